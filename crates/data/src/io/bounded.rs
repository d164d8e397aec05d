//! Bounded random access to the bytes of a file, for the readers that follow
//! offsets and lengths stored in the file (DigitalMicrograph, TIA SER).
//!
//! A [`Bounded`] source holds the bytes in memory or reads a file on demand.
//! Every read names what it reads and is checked against the length of the
//! file before anything is allocated or read, so a corrupt length or offset
//! gives [`DataError::Malformed`] ("truncated: ... lies past the end of the
//! N-byte file"), never an allocation larger than the file or a panic. A file
//! is read through a window of [`FILE_WINDOW`] bytes, so that parsing many
//! small fields costs few system calls; large reads (pixel data) bypass it.

use super::util::{file_len, io_error, malformed};
use crate::{DataError, Result};
use std::borrow::Cow;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Size of the read-ahead window used when reading a file.
pub(crate) const FILE_WINDOW: usize = 1 << 16;

/// The bytes of one file, in memory or on disk, read only inside its length.
/// `format` names the file format in errors.
pub(crate) struct Bounded<'a> {
    data: Data<'a>,
    format: &'static str,
}

/// Where the bytes come from.
enum Data<'a> {
    Bytes(&'a [u8]),
    File(Windowed),
}

/// A file read in windows of [`FILE_WINDOW`] bytes.
struct Windowed {
    file: File,
    len: u64,
    window: Vec<u8>,
    start: u64,
}

impl Windowed {
    /// Fills `out` from byte `pos`.
    fn read_at(&mut self, pos: u64, out: &mut [u8]) -> std::io::Result<()> {
        let n = out.len() as u64;
        let end = pos.saturating_add(n);
        let window_end = self.start.saturating_add(self.window.len() as u64);
        if pos < self.start || end > window_end {
            if out.len() >= FILE_WINDOW {
                self.file.seek(SeekFrom::Start(pos))?;
                return self.file.read_exact(out);
            }
            let take = self.len.saturating_sub(pos).min(FILE_WINDOW as u64);
            self.window.clear();
            self.window.resize(usize::try_from(take).unwrap_or(0), 0);
            self.file.seek(SeekFrom::Start(pos))?;
            if let Err(e) = self.file.read_exact(&mut self.window) {
                self.window.clear();
                return Err(e);
            }
            self.start = pos;
        }
        let from = usize::try_from(pos - self.start).unwrap_or(usize::MAX);
        let src = from
            .checked_add(out.len())
            .and_then(|to| self.window.get(from..to))
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        out.copy_from_slice(src);
        Ok(())
    }
}

impl std::fmt::Debug for Bounded<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bounded")
            .field("format", &self.format)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<'a> Bounded<'a> {
    /// Bytes held in memory.
    pub(crate) fn from_bytes(bytes: &'a [u8], format: &'static str) -> Self {
        Self {
            data: Data::Bytes(bytes),
            format,
        }
    }

    /// The file at `path`, read on demand.
    ///
    /// # Errors
    /// [`DataError::Io`] if it cannot be opened or its length read.
    pub(crate) fn open(path: &Path, format: &'static str) -> Result<Bounded<'static>> {
        let file = File::open(path).map_err(|e| io_error(path, e))?;
        let len = file_len(path, &file)?;
        Ok(Bounded {
            data: Data::File(Windowed {
                file,
                len,
                window: Vec::new(),
                start: 0,
            }),
            format,
        })
    }

    /// Length of the file in bytes.
    pub(crate) fn len(&self) -> u64 {
        match &self.data {
            Data::Bytes(b) => b.len() as u64,
            Data::File(f) => f.len,
        }
    }

    /// The error for `what`, `n` bytes at byte `at`, running past the end of
    /// the file at `path`.
    pub(crate) fn truncated(&self, path: &Path, what: &str, at: u64, n: u64) -> DataError {
        malformed(
            path,
            self.format,
            format!(
                "truncated: {what} ({n} bytes at byte {at}) lies past the end of the {}-byte file",
                self.len()
            ),
        )
    }

    /// Checks that `n` bytes at `at` lie inside the file (`what` names them
    /// in the error).
    ///
    /// # Errors
    /// [`DataError::Malformed`] ([`Bounded::truncated`]) if they do not.
    pub(crate) fn check(&self, path: &Path, at: u64, n: u64, what: &str) -> Result<()> {
        match at.checked_add(n) {
            Some(end) if end <= self.len() => Ok(()),
            _ => Err(self.truncated(path, what, at, n)),
        }
    }

    /// Fills `out` from byte `at`, after checking that the file holds those
    /// bytes.
    ///
    /// # Errors
    /// [`DataError::Malformed`] when they lie past the end of the file, or the
    /// file became shorter while being read; [`DataError::Io`] when reading
    /// fails.
    pub(crate) fn read_into(
        &mut self,
        path: &Path,
        at: u64,
        out: &mut [u8],
        what: &str,
    ) -> Result<()> {
        self.check(path, at, out.len() as u64, what)?;
        let format = self.format;
        match &mut self.data {
            Data::Bytes(b) => {
                let src = usize::try_from(at)
                    .ok()
                    .and_then(|from| b.get(from..from.checked_add(out.len())?))
                    .ok_or_else(|| malformed(path, format, "range outside the buffer"))?;
                out.copy_from_slice(src);
                Ok(())
            }
            Data::File(f) => f.read_at(at, out).map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    malformed(path, format, "the file became shorter while being read")
                } else {
                    io_error(path, e)
                }
            }),
        }
    }

    /// The `n` bytes at `at`, after checking that the file holds them:
    /// borrowed from memory, or read from the file into a buffer of `n`
    /// bytes (so never more than the file holds is allocated).
    ///
    /// # Errors
    /// As [`Bounded::read_into`].
    pub(crate) fn take(
        &mut self,
        path: &Path,
        at: u64,
        n: u64,
        what: &str,
    ) -> Result<Cow<'_, [u8]>> {
        self.check(path, at, n, what)?;
        if let Data::Bytes(b) = self.data {
            let range = usize::try_from(at)
                .ok()
                .zip(usize::try_from(n).ok())
                .and_then(|(a, n)| b.get(a..a.checked_add(n)?));
            return range
                .map(Cow::Borrowed)
                .ok_or_else(|| malformed(path, self.format, "range outside the buffer"));
        }
        let size = usize::try_from(n)
            .map_err(|_| malformed(path, self.format, format!("{n} bytes do not fit in memory")))?;
        let mut buf = vec![0_u8; size];
        self.read_into(path, at, &mut buf, what)?;
        Ok(Cow::Owned(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_inside_the_bytes_and_refuses_past_the_end() {
        let p = Path::new("x.bin");
        let bytes: Vec<u8> = (0..10).collect();
        let mut src = Bounded::from_bytes(&bytes, "TEST");
        assert_eq!(src.len(), 10);
        assert_eq!(&*src.take(p, 2, 3, "a field").unwrap(), &[2, 3, 4]);
        let mut out = [0_u8; 2];
        src.read_into(p, 8, &mut out, "a field").unwrap();
        assert_eq!(out, [8, 9]);
        let err = src.take(p, 8, 3, "the tail").unwrap_err();
        assert!(matches!(err, DataError::Malformed { format: "TEST", .. }));
        let msg = err.to_string();
        assert!(
            msg.contains(
                "truncated: the tail (3 bytes at byte 8) lies past the end of the 10-byte file"
            ),
            "{msg}"
        );
        assert!(src.take(p, u64::MAX, 2, "x").is_err());
        assert!(src.check(p, 10, 0, "nothing").is_ok());
    }

    #[test]
    fn a_file_reads_like_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.bin");
        let bytes: Vec<u8> = (0..200_000_u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &bytes).unwrap();
        let mut src = Bounded::open(&p, "TEST").unwrap();
        assert_eq!(src.len(), bytes.len() as u64);
        // Small reads go through the window, in and out of order; a large one
        // bypasses it.
        for (at, n) in [
            (0_u64, 4_u64),
            (70_000, 16),
            (10, 8),
            (65_530, 12),
            (1, 100_000),
        ] {
            let got = src.take(&p, at, n, "a range").unwrap().into_owned();
            let (a, n) = (at as usize, n as usize);
            assert_eq!(got, &bytes[a..a + n], "{at} {n}");
        }
        assert!(matches!(
            src.take(&p, 199_999, 2, "the end"),
            Err(DataError::Malformed { .. })
        ));
        assert!(matches!(
            Bounded::open(&dir.path().join("missing"), "TEST"),
            Err(DataError::Io { .. })
        ));
    }
}
