//! How the library tells its caller what it is doing, without printing anything itself.

/// Receives progress and warnings. The command-line front ends print them cargo-style; library users
/// can collect or ignore them.
pub trait Listener {
    /// A step starts or ends: `verb` is a single word such as `Packaging` or `Written`.
    fn status(&self, verb: &str, message: &str);
    /// Something the user should know but that does not stop the run.
    fn warning(&self, message: &str);
    /// Detail worth showing only in verbose mode.
    fn detail(&self, message: &str);
}

/// A listener that drops everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl Listener for Silent {
    fn status(&self, _: &str, _: &str) {}
    fn warning(&self, _: &str) {}
    fn detail(&self, _: &str) {}
}
