//! Files that hold authority (the token file, tail cursors): opened, then
//! checked through the open handle (owner, mode, type) before a byte is
//! trusted, as sudo does for sudoers; written by atomic replace.
#![forbid(unsafe_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Largest token file read.
pub const MAX_SECRET_FILE: u64 = 1 << 20;

/// Reads a file that must not be writable by group or others nor readable
/// by others, and must belong to root or to the user running jobgate.
pub fn read_private(path: &Path) -> Result<String, String> {
    read_checked(path, true, MAX_SECRET_FILE)
}

/// Reads a file that others may read but that only root or the user
/// running jobgate may change (public keys: whoever writes them can sign
/// tokens), of at most `max` bytes.
pub fn read_protected(path: &Path, max: u64) -> Result<String, String> {
    read_checked(path, false, max)
}

fn read_checked(path: &Path, private: bool, max: u64) -> Result<String, String> {
    let shown = path.display();
    let file = File::open(path).map_err(|e| format!("{shown}: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown}: not a regular file"));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!("{shown} is writable by others (mode {mode:04o}); run: chmod go-w {shown}"));
    }
    if private && mode & 0o004 != 0 {
        return Err(format!("{shown} is readable by others (mode {mode:04o}); run: chmod o-r {shown}"));
    }
    let me = current_uid();
    if meta.uid() != 0 && Some(meta.uid()) != me {
        return Err(format!("{shown} belongs to uid {}, not to root or to this user", meta.uid()));
    }
    let mut text = String::new();
    file.take(max + 1).read_to_string(&mut text).map_err(|e| format!("{shown}: {e}"))?;
    if text.len() as u64 > max {
        return Err(format!("{shown}: larger than {max} bytes"));
    }
    Ok(text)
}

/// The device, inode, size, mtime and ctime of a file, to notice a change
/// cheaply (ctime: a `chmod` that loosens its modes is a change too).
pub type Fingerprint = (u64, u64, u64, (i64, i64), (i64, i64));

pub fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let m = fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.size(), (m.mtime(), m.mtime_nsec()), (m.ctime(), m.ctime_nsec())))
}

/// A file with authority (tokens, trust lines, keys) read again when it
/// changes on disk. A version that does not read (a typo, loose modes, a
/// file gone) grants nothing until it is fixed: keeping the last good one
/// would keep a token, trust line or key working that the edit removed.
pub struct Watched<T> {
    path: PathBuf,
    read: fn(&Path) -> Result<T, String>,
    cached: Mutex<(Option<Fingerprint>, Arc<T>)>,
}

impl<T: Default> Watched<T> {
    /// Reads the file now: a first version that does not read is an error.
    pub fn new(path: PathBuf, read: fn(&Path) -> Result<T, String>) -> Result<Watched<T>, String> {
        let fingerprint = fingerprint(&path);
        let value = read(&path)?;
        Ok(Watched { path, read, cached: Mutex::new((fingerprint, Arc::new(value))) })
    }

    /// A value that is never read from a file: for tests and fuzzing.
    pub fn fixed(value: T) -> Watched<T> {
        let never = |_: &Path| Err("fixed".to_string());
        Watched { path: PathBuf::new(), read: never, cached: Mutex::new((None, Arc::new(value))) }
    }

    pub fn current(&self) -> Arc<T> {
        let mut cached = match self.cached.lock() {
            Ok(cached) => cached,
            Err(poisoned) => poisoned.into_inner(),
        };
        if self.path.as_os_str().is_empty() {
            return Arc::clone(&cached.1);
        }
        let now = fingerprint(&self.path);
        if now != cached.0 {
            let value = (self.read)(&self.path).unwrap_or_else(|e| {
                log::error!("{e}; nothing in {} is taken until it is fixed", self.path.display());
                T::default()
            });
            *cached = (now, Arc::new(value));
        }
        Arc::clone(&cached.1)
    }
}

/// Replaces `path` with `contents` atomically: a new file beside it, synced,
/// then renamed over. An existing file's mode and owner are kept; a new
/// file gets `mode`.
pub fn replace(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    // Unique per call: one process (serve) replaces files from many threads.
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{}.tmp{}.{call}", name.to_string_lossy(), std::process::id()));
    let old = fs::metadata(path).ok();
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    let written = (|| {
        file.write_all(contents)?;
        if let Some(old) = &old {
            std::os::unix::fs::fchown(&file, Some(old.uid()), Some(old.gid()))?;
            file.set_permissions(fs::Permissions::from_mode(old.mode() & 0o7777))?;
        } else {
            file.set_permissions(fs::Permissions::from_mode(mode))?;
        }
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// An exclusive lock on `.NAME.lock` beside `path`, held until the file
/// handed back is dropped: it serialises a read-change-write of `path`
/// across threads and processes (`serve`, `inetd`, `cgi`, the admin CLI).
pub fn lock_beside(path: &Path) -> io::Result<File> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let lock = dir.join(format!(".{}.lock", name.to_string_lossy()));
    let file = OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(lock)?;
    file.lock()?;
    Ok(file)
}

/// The effective uid, from /proc (std has no getuid without libc).
pub fn current_uid() -> Option<u32> {
    fs::metadata("/proc/self").ok().map(|m| m.uid())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of its own for one test, removed when dropped.
    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("jobgate-secure-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("scratch dir");
            Scratch(dir)
        }

        fn file(&self) -> std::path::PathBuf {
            self.0.join("tokens")
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Lines without a space; a line with one is an error.
    fn words(path: &Path) -> Result<Vec<String>, String> {
        let text = read_private(path)?;
        text.lines().map(|l| if l.contains(' ') { Err(format!("bad line '{l}'")) } else { Ok(l.to_string()) }).collect()
    }

    #[test]
    fn an_edit_that_does_not_read_grants_nothing_until_fixed() {
        let scratch = Scratch::new("watched");
        let path = scratch.file();
        let write = |text: &str, mode: u32| {
            fs::write(&path, text).expect("write");
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        };
        write("a\nb\n", 0o600);
        let watched = Watched::new(path.clone(), words).expect("reads");
        assert_eq!(*watched.current(), ["a", "b"]);
        // b revoked, with a typo elsewhere in the same edit: b must not
        // keep working, so nothing does.
        write("a\nc d\n", 0o600);
        assert!(watched.current().is_empty());
        write("a\n", 0o600);
        assert_eq!(*watched.current(), ["a"]);
        // Loose modes by a chmod alone: the file may have been changed by
        // anyone.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).expect("chmod");
        assert!(watched.current().is_empty());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(*watched.current(), ["a"]);
        fs::remove_file(&path).expect("remove");
        assert!(watched.current().is_empty(), "a file gone grants nothing");
    }

    #[test]
    fn refuses_loose_modes_with_the_fix() {
        let scratch = Scratch::new("modes");
        let path = scratch.file();
        fs::write(&path, "x").expect("write");
        for (mode, words) in
            [(0o644, "readable by others"), (0o620, "writable by others"), (0o602, "writable by others")]
        {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
            let err = read_private(&path).expect_err("refused");
            assert!(err.contains(words), "{err}");
            assert!(err.contains("run: chmod"), "{err}");
        }
        for mode in [0o600, 0o640, 0o400] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
            assert_eq!(read_private(&path).as_deref(), Ok("x"));
        }
    }

    #[test]
    fn replace_keeps_mode_and_creates_private() {
        let scratch = Scratch::new("replace");
        let path = scratch.file();
        replace(&path, b"one", 0o600).expect("create");
        assert_eq!(fs::metadata(&path).expect("meta").mode() & 0o777, 0o600);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        replace(&path, b"two", 0o600).expect("replace");
        assert_eq!(fs::read_to_string(&path).expect("read"), "two");
        assert_eq!(fs::metadata(&path).expect("meta").mode() & 0o777, 0o640);
    }
}
