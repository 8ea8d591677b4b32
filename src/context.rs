//! What every run is handed by its caller: where progress goes ([`Listener`]), how it is cancelled
//! ([`CancelToken`]) and where registry credentials come from ([`Keychain`]). Nothing here is global,
//! so two runs in one process report, cancel and authenticate separately, and a library user or a
//! test supplies its own of each.

use crate::error::Result;
use crate::report::Listener;
use crate::util::cancel::CancelToken;

/// A run's listener, cancel token and keychain. Cheap to clone (two references and a shared token).
///
/// ```
/// use zeroimage::Context;
/// use zeroimage::report::Silent;
/// use zeroimage::util::cancel::CancelToken;
///
/// let token = CancelToken::new();
/// let cx = Context::new(&Silent).with_cancel(token.clone());
/// // Another thread may call `token.cancel()`: the run then ends with `Error::Interrupted`.
/// assert!(!cx.cancel().is_cancelled());
/// ```
#[derive(Clone)]
pub struct Context<'a> {
    listener: &'a dyn Listener,
    cancel: CancelToken,
    keychain: Option<&'a dyn Keychain>,
}

impl<'a> Context<'a> {
    /// A context reporting to `listener`, with a token of its own (cancelled by nobody until a clone
    /// of [`Context::cancel`] is) and the default keychain: the credentials docker, podman and skopeo
    /// use (their config files and credential helpers, see `registry::credentials`).
    pub fn new(listener: &'a dyn Listener) -> Context<'a> {
        Context {
            listener,
            cancel: CancelToken::new(),
            keychain: None,
        }
    }

    /// The same context, cancelled by `token`.
    pub fn with_cancel(mut self, token: CancelToken) -> Context<'a> {
        self.cancel = token;
        self
    }

    /// The same context, taking registry credentials from `keychain` instead of the default one.
    pub fn with_keychain(mut self, keychain: &'a dyn Keychain) -> Context<'a> {
        self.keychain = Some(keychain);
        self
    }

    /// The same context, reporting to `listener`.
    pub fn with_listener(mut self, listener: &'a dyn Listener) -> Context<'a> {
        self.listener = listener;
        self
    }

    /// Where progress and warnings go.
    pub fn listener(&self) -> &'a dyn Listener {
        self.listener
    }

    /// The run's cancel token.
    pub fn cancel(&self) -> &CancelToken {
        &self.cancel
    }

    /// The keychain given with [`Context::with_keychain`]; `None` means the default one.
    pub fn keychain(&self) -> Option<&'a dyn Keychain> {
        self.keychain
    }
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("cancel", &self.cancel)
            .field("keychain", &self.keychain.map_or("default", |_| "custom"))
            .finish_non_exhaustive()
    }
}

/// Where registry credentials come from. The default one reads what `docker login`, `podman login`
/// and `zeroimage login` store; a library user (or a test) may hand in its own, such as a secret
/// store or a fixed credential.
pub trait Keychain: Sync {
    /// The credential for `registry`, a host as references name it (`docker.io` for Docker Hub,
    /// `localhost:5000`); `None` means anonymous. It is sent to that registry's own origin only
    /// (and to the token service it names). `cx` is the run's, to report to and to cancel a slow
    /// lookup by.
    fn credential(&self, registry: &str, cx: &Context<'_>) -> Result<Option<Credential>>;
}

/// A credential for one registry. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password (or token) sent as basic auth or exchanged for a bearer token.
    Basic {
        /// The account name.
        username: String,
        /// The password or access token.
        password: String,
    },
    /// An OAuth2 refresh token (docker's `identitytoken`), exchanged for bearer tokens.
    IdentityToken(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

impl Credential {
    /// Who this is, for messages: the user name, or "an identity token".
    pub fn who(&self) -> String {
        match self {
            Credential::Basic { username, .. } => format!("user `{username}`"),
            Credential::IdentityToken(_) => "an identity token".to_owned(),
        }
    }
}
