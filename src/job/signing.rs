//! Which keys sign a run's pushes, loaded once: a password is asked for (or read from
//! `COSIGN_PASSWORD`) before anything is built, and a workspace's images share the loaded keys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::Result;
use crate::image::signatures::{SignatureFormat, Signer};
use crate::sign::SigningKey;

/// The signing choice of a run: key files (flags, else settings) and the format.
#[derive(Clone, Debug, Default)]
pub struct SigningOptions {
    /// Private key files (`--sign`); empty: the settings' `sign-key`, else no signing.
    pub keys: Vec<PathBuf>,
    /// `--signature-format`; `None`: the settings', else cosign.
    pub format: Option<SignatureFormat>,
    /// Keys loaded so far in this run, shared by its clones.
    pub ring: KeyRing,
}

impl SigningOptions {
    /// The signer for these options over the settings' `keys` and `format`; `None` without a key.
    pub fn signer(
        &self,
        keys: &[PathBuf],
        format: Option<SignatureFormat>,
    ) -> Result<Option<Signer>> {
        let paths = if self.keys.is_empty() {
            keys
        } else {
            &self.keys
        };
        if paths.is_empty() {
            return Ok(None);
        }
        let loaded = paths
            .iter()
            .map(|p| {
                self.ring
                    .load(p)
                    .map(|key| key as Arc<dyn crate::sign::MessageSigner>)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Signer::new(
            loaded,
            self.format.or(format).unwrap_or_default(),
        )))
    }
}

/// Keys loaded in one run, by path, so that each password is asked for once.
#[derive(Clone, Default)]
pub struct KeyRing {
    keys: Arc<Mutex<BTreeMap<PathBuf, Arc<SigningKey>>>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").finish_non_exhaustive()
    }
}

impl KeyRing {
    /// The key at `path`, loaded now (asking for its password if it is encrypted) or before.
    pub fn load(&self, path: &Path) -> Result<Arc<SigningKey>> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(key) = keys.get(path) {
            return Ok(Arc::clone(key));
        }
        let what = format!("the signing key {}", path.display());
        let key = Arc::new(SigningKey::load(path, &mut || {
            crate::sign::password_from_env_or_terminal(&what, false)
        })?);
        keys.insert(path.to_owned(), Arc::clone(&key));
        Ok(key)
    }
}
