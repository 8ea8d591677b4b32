//! `cargo zeroimage`: not implemented yet; says so instead of pretending.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "error: `cargo zeroimage` is not implemented yet; build with \
         `cargo build --release --target x86_64-unknown-linux-musl`, then run \
         `zeroimage target/x86_64-unknown-linux-musl/release/NAME`"
    );
    ExitCode::from(1)
}
