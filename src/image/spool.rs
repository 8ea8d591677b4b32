//! Layers built for a push without an archive: each is written once to a private temporary directory
//! (removed when the run ends, or by the Ctrl-C deadline) and read back from there by the push.

use std::collections::BTreeMap;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;

use super::blobs::{BlobSink, BlobSource};
use crate::error::{Error, Result};
use crate::oci::{Descriptor, Digest, VerifyingReader};
use crate::util::cancel::TempGuard;
use crate::util::fsutil::{self, WatchedWriter};

/// A temporary store of built layers.
pub struct Spool {
    dir: tempfile::TempDir,
    _guard: TempGuard,
    blobs: BTreeMap<Digest, PathBuf>,
    next: u64,
}

impl Spool {
    /// A new, empty spool in the system's temporary directory.
    pub fn new() -> Result<Spool> {
        let dir = crate::util::outputs::temp_dir("zeroimage-")
            .map_err(Error::io("creating a directory in", std::env::temp_dir()))?;
        let guard = TempGuard::new(dir.path());
        Ok(Spool {
            dir,
            _guard: guard,
            blobs: BTreeMap::new(),
            next: 0,
        })
    }

    /// The blobs stored so far.
    pub fn digests(&self) -> impl Iterator<Item = Digest> + '_ {
        self.blobs.keys().cloned()
    }
}

impl BlobSink for Spool {
    fn put_streamed(
        &mut self,
        write: &mut dyn FnMut(&mut dyn Write) -> Result<Digest>,
    ) -> Result<()> {
        self.next += 1;
        let path = self.dir.path().join(format!("layer-{}", self.next));
        let file = std::fs::File::create(&path).map_err(Error::io("creating", &path))?;
        let mut out = BufWriter::with_capacity(256 << 10, file);
        let mut watched = WatchedWriter::new(&mut out);
        let digest =
            write(&mut watched).map_err(|e| watched.explain(e, "writing the layer to", &path))?;
        out.flush()
            .map_err(Error::io("writing the layer to", &path))?;
        self.blobs.insert(digest, path);
        Ok(())
    }
}

impl BlobSource for Spool {
    fn open(&self, descriptor: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        let path = self
            .blobs
            .get(&descriptor.digest)
            .ok_or_else(|| Error::Invalid(format!("blob {} was not built", descriptor.digest)))?;
        let file = fsutil::open_regular(path, "a built layer")?;
        Ok(Box::new(VerifyingReader::new(
            file,
            descriptor.digest.clone(),
            descriptor.size,
        )))
    }

    fn describe(&self) -> String {
        "the layers being built".to_owned()
    }
}
