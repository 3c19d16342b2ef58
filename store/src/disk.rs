//! The disk seam, and `FileDisk`, the real one over `std::fs`.
//!
//! The store needs little of a file system: files it creates, reads and
//! writes at offsets, truncates and syncs; directories it lists, renames
//! within and syncs. A write is durable only after `sync` of its file; a
//! created, renamed or removed name is durable only after `sync_dir` of its
//! directory. The store is written against exactly that contract, which is
//! also the contract `SimDisk` (in `shale-sim`) enforces with faults.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file opened for reading only. Reads are positional and take `&self`,
/// so one handle serves every reader thread at once.
#[expect(clippy::len_without_is_empty, reason = "a file's length, asked of the medium, not a collection's")]
pub trait ReadAt: Send + Sync + 'static {
    /// Reads up to `buf.len()` bytes at `offset`; may return fewer.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    fn len(&self) -> io::Result<u64>;
}

/// Opens files for reading from any thread, apart from the writer's disk:
/// readers reach the payloads in the segments through it.
pub trait OpenRead: Send + Sync + 'static {
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn ReadAt>>;
}

/// A file system as the store uses it. Methods take `&mut self`: one disk
/// belongs to one writer. Reads go through read-only handles
/// ([`Disk::open_read`]); the writable handle only writes, truncates and
/// syncs.
pub trait Disk: Send + 'static {
    /// A file open for writing.
    type File: Send + 'static;
    /// A file open for reading only.
    type ReadFile: ReadAt;
    /// A held directory lock; dropping it releases the lock.
    type Lock: Send + 'static;

    /// Creates `path` and its missing parents (durable after `sync_dir` of
    /// each parent).
    fn create_dir_all(&mut self, path: &Path) -> io::Result<()>;
    /// Takes the exclusive lock named by `path`, creating the file if needed.
    /// Fails with `ErrorKind::WouldBlock` if another holder has it.
    fn lock(&mut self, path: &Path) -> io::Result<Self::Lock>;
    /// Creates `path` empty (truncating any file of that name), open for
    /// writing.
    fn create(&mut self, path: &Path) -> io::Result<Self::File>;
    /// Opens an existing `path` for writing.
    fn open(&mut self, path: &Path) -> io::Result<Self::File>;
    /// Opens an existing `path` for reading only: a read-only file opens.
    fn open_read(&mut self, path: &Path) -> io::Result<Self::ReadFile>;
    /// What readers open files with: the same files, the same faults, from
    /// any thread.
    fn reads(&mut self) -> Arc<dyn OpenRead>;
    /// Writes all of `data` at `offset`.
    fn write_at(&mut self, file: &mut Self::File, offset: u64, data: &[u8]) -> io::Result<()>;
    fn len(&mut self, file: &mut Self::File) -> io::Result<u64>;
    fn set_len(&mut self, file: &mut Self::File, len: u64) -> io::Result<()>;
    /// Makes every write to `file` so far durable (fdatasync).
    fn sync(&mut self, file: &mut Self::File) -> io::Result<()>;
    /// Makes the names in directory `dir` durable (fsync of the directory).
    fn sync_dir(&mut self, dir: &Path) -> io::Result<()>;
    /// Atomically renames `from` to `to`, replacing `to`.
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove(&mut self, path: &Path) -> io::Result<()>;
    /// The names (not paths) in `dir`, sorted.
    fn list(&mut self, dir: &Path) -> io::Result<Vec<String>>;
    fn exists(&mut self, path: &Path) -> io::Result<bool>;
}

/// Reads exactly `buf.len()` bytes at `offset`, looping over short reads.
/// Returns `UnexpectedEof` if the file ends first.
pub fn read_exact_at(file: &impl ReadAt, mut offset: u64, mut buf: &mut [u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match file.read_at(offset, buf) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                offset += n as u64;
                buf = &mut buf[n..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads the whole of the small file `path` (META, the keyset), refusing
/// one longer than `len_max` before allocating for it.
pub fn read_small_file<D: Disk>(disk: &mut D, path: &Path, len_max: u64) -> io::Result<Vec<u8>> {
    let file = disk.open_read(path)?;
    let len = file.len()?;
    if len > len_max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{len} bytes is over the limit of {len_max}")));
    }
    let mut bytes = vec![0u8; len as usize];
    read_exact_at(&file, 0, &mut bytes)?;
    Ok(bytes)
}

/// Publishes `bytes` as `path` atomically: writes a temporary file, syncs
/// it, renames it over `path` and syncs the directory. A crash at any point
/// leaves either the old file or the new one, never a mix.
pub fn publish_atomically<D: Disk>(disk: &mut D, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    let mut file = disk.create(&temp)?;
    disk.write_at(&mut file, 0, bytes)?;
    disk.sync(&mut file)?;
    drop(file);
    disk.rename(&temp, path)?;
    disk.sync_dir(dir)
}

/// The real disk, over `std::fs`.
#[derive(Debug, Default)]
pub struct FileDisk;

/// Readers' opening of real files.
#[derive(Debug)]
pub struct FileReads;

impl OpenRead for FileReads {
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn ReadAt>> {
        Ok(Arc::new(std::fs::File::open(path)?))
    }
}

impl ReadAt for std::fs::File {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        positional::read_at(self, offset, buf)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

impl Disk for FileDisk {
    type File = std::fs::File;
    type ReadFile = std::fs::File;
    type Lock = std::fs::File;

    fn create_dir_all(&mut self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn lock(&mut self, path: &Path) -> io::Result<std::fs::File> {
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    fn create(&mut self, path: &Path) -> io::Result<std::fs::File> {
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(path)
    }

    fn open(&mut self, path: &Path) -> io::Result<std::fs::File> {
        std::fs::OpenOptions::new().write(true).open(path)
    }

    fn open_read(&mut self, path: &Path) -> io::Result<std::fs::File> {
        std::fs::File::open(path)
    }

    fn reads(&mut self) -> Arc<dyn OpenRead> {
        Arc::new(FileReads)
    }

    fn write_at(&mut self, file: &mut std::fs::File, offset: u64, data: &[u8]) -> io::Result<()> {
        positional::write_all_at(file, offset, data)
    }

    fn len(&mut self, file: &mut std::fs::File) -> io::Result<u64> {
        Ok(file.metadata()?.len())
    }

    fn set_len(&mut self, file: &mut std::fs::File, len: u64) -> io::Result<()> {
        file.set_len(len)
    }

    fn sync(&mut self, file: &mut std::fs::File) -> io::Result<()> {
        file.sync_data()
    }

    fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        #[cfg(unix)]
        {
            std::fs::File::open(dir)?.sync_all()
        }
        #[cfg(not(unix))]
        {
            // Directory entries cannot be synced on this platform; the
            // metadata journal of the file system is all there is.
            let _ = dir;
            Ok(())
        }
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&mut self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn list(&mut self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn exists(&mut self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }
}

#[cfg(unix)]
mod positional {
    use std::os::unix::fs::FileExt;
    pub fn read_at(file: &std::fs::File, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        file.read_at(buf, offset)
    }
    pub fn write_all_at(file: &std::fs::File, offset: u64, data: &[u8]) -> std::io::Result<()> {
        file.write_all_at(data, offset)
    }
}

#[cfg(windows)]
mod positional {
    use std::os::windows::fs::FileExt;
    pub fn read_at(file: &std::fs::File, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        file.seek_read(buf, offset)
    }
    pub fn write_all_at(file: &std::fs::File, mut offset: u64, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let n = file.seek_write(data, offset)?;
            offset += n as u64;
            data = &data[n..];
        }
        Ok(())
    }
}
