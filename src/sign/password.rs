//! The password of a private key: `COSIGN_PASSWORD` (cosign's convention, so CI set up for cosign
//! works unchanged), else a prompt on the terminal without echo. Never a flag (it would show in the
//! process list and shell history), never printed.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::error::signing::KeyProblem;
use crate::error::{Error, Result};
use crate::util::terminal::EchoOff;

/// The variable the password is read from, as cosign reads it.
pub const PASSWORD_VARIABLE: &str = "COSIGN_PASSWORD";

/// The longest password read from the terminal.
const MAX_PASSWORD: u64 = 4096;

/// The password: `COSIGN_PASSWORD` when set (even empty, as cosign takes it), else asked on the
/// terminal (twice with `confirm`, for a new key), else an error saying to set `COSIGN_PASSWORD`.
/// `purpose` names the key in the prompt and in errors (e.g. `cosign.key`).
pub fn password_from_env_or_terminal(purpose: &str, confirm: bool) -> Result<Zeroizing<String>> {
    if let Some(value) = std::env::var_os(PASSWORD_VARIABLE) {
        return value.into_string().map(Zeroizing::new).map_err(|_| {
            Error::Invalid(format!(
                "{PASSWORD_VARIABLE} is not valid UTF-8; set it to the key's password"
            ))
        });
    }
    let no_password = || Error::key(PathBuf::from(purpose), KeyProblem::NoPassword);
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(no_password());
    }
    let first =
        prompt(&format!("Enter password for private key {purpose}: ")).ok_or_else(no_password)?;
    if confirm {
        let second = prompt(&format!("Enter password for private key {purpose} again: "))
            .ok_or_else(no_password)?;
        if *first != *second {
            return Err(Error::key(
                PathBuf::from(purpose),
                KeyProblem::PasswordsDiffer,
            ));
        }
    }
    Ok(first)
}

/// One line read from the terminal with echo off; `None` when the terminal cannot be used.
fn prompt(text: &str) -> Option<Zeroizing<String>> {
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "{text}");
    let _ = stderr.flush();
    let line = {
        let _quiet = EchoOff::new()?;
        let mut line = Zeroizing::new(String::new());
        let read = std::io::Read::take(std::io::stdin().lock(), MAX_PASSWORD)
            .read_line(&mut line)
            .ok();
        read.map(|_| line)
    };
    let _ = writeln!(stderr);
    let mut line = line?;
    while line.ends_with(['\n', '\r']) {
        line.pop();
    }
    Some(line)
}
