//! Windows hosts: docker and containerd listen on named pipes there, not unix sockets. docker is
//! reached through its CLI (the pipe is the CLI's business) and containerd is refused, so the socket
//! code never connects; these stand-ins let it compile unchanged. A connection fails as unsupported,
//! and no file is a socket, device or FIFO.

use std::convert::Infallible;
use std::io;
use std::path::Path;
use std::time::Duration;

/// Stands in for `std::os::unix::net::UnixStream`: no value of it exists.
#[derive(Debug)]
pub(super) struct UnixStream(Infallible);

impl UnixStream {
    pub fn connect(_path: impl AsRef<Path>) -> io::Result<UnixStream> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "unix sockets are not used on Windows",
        ))
    }

    pub fn set_read_timeout(&self, _timeout: Option<Duration>) -> io::Result<()> {
        match self.0 {}
    }

    pub fn set_write_timeout(&self, _timeout: Option<Duration>) -> io::Result<()> {
        match self.0 {}
    }
}

impl io::Read for &UnixStream {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        match self.0 {}
    }
}

impl io::Write for &UnixStream {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        match self.0 {}
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.0 {}
    }
}

/// Stands in for `std::os::unix::fs::FileTypeExt`: Windows has none of these file types.
pub(super) trait FileTypeExt {
    fn is_socket(&self) -> bool {
        false
    }
    fn is_char_device(&self) -> bool {
        false
    }
    fn is_block_device(&self) -> bool {
        false
    }
    fn is_fifo(&self) -> bool {
        false
    }
}

impl FileTypeExt for std::fs::FileType {}
