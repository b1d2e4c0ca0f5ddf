//! The fair share of `follow` streams: how many one token may hold, given
//! what the other tokens hold. A token may open a stream while the streams
//! it holds are fewer than its share,
//! `max(1, (max_streams - held_by_others) / (other_active_tokens + 1))`,
//! and never more than the hard ceiling (`--max-follows-per-token`). So a
//! token alone may take every stream, and a token holding streams cannot
//! take the last free ones from a token that holds none or fewer: whatever
//! it holds, each other active token is left a share as large as its own.
//! The counts are read from the slot locks under the state directory
//! (`follow::Limits`, which counts and takes under one lock), so they hold
//! across processes.
#![forbid(unsafe_code)]

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::Path;

/// The most streams a token may hold, given `held_by_others` streams held
/// by `other_tokens` other tokens, at most `ceiling`.
pub fn share(max_streams: usize, held_by_others: usize, other_tokens: usize, ceiling: usize) -> usize {
    let free = max_streams.saturating_sub(held_by_others);
    (free / (other_tokens + 1)).max(1).min(ceiling.max(1))
}

/// Streams held now: `(this token's, the others', how many other tokens hold
/// any)`, from the per-token slot files in `slot_dir`.
pub fn held(slot_dir: &Path, token: &str) -> io::Result<(usize, usize, usize)> {
    let own_name = format!("token-{token}");
    let (mut own, mut others, mut tokens) = (0, 0, 0);
    let entries = match fs::read_dir(slot_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, 0, 0)),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with("token-") || !entry.file_type()?.is_dir() {
            continue;
        }
        let n = held_in(&entry.path())?;
        if name == own_name {
            own = n;
        } else if n > 0 {
            others += n;
            tokens += 1;
        }
    }
    Ok((own, others, tokens))
}

/// How many of the slot files in `dir` are locked by a stream. A free one is
/// locked for a moment by the look; a stream that wants it then takes the
/// next.
fn held_in(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_name().to_str().is_some_and(|s| s.starts_with("slot-")) {
            continue;
        }
        let file: File = match OpenOptions::new().read(true).open(entry.path()) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => n += 1,
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn a_token_alone_takes_every_stream() {
        assert_eq!(share(16, 0, 0, 16), 16);
        assert_eq!(share(16, 0, 0, 4), 4, "the ceiling holds");
    }

    #[test]
    fn a_token_cannot_take_the_last_streams_from_another() {
        // A holds 15 of 16; B, holding none, is left the last one.
        assert_eq!(share(16, 15, 1, 16), 1);
        // B holds 1: A (holding 14, 1 free) may not take it: its share is (16-1)/2 = 7.
        assert!(14 >= share(16, 1, 1, 16));
        // The other holds 8: this one may hold (16-8)/2 = 4 (and the other
        // no more new ones while it holds over (16-4)/2 = 6).
        assert_eq!(share(16, 8, 1, 16), 4);
        assert_eq!(share(16, 4, 1, 16), 6);
        // Three tokens, the others holding 2 and 3: this one may hold up to 11/3 = 3.
        assert_eq!(share(16, 5, 2, 16), 3);
    }

    #[test]
    fn always_one_at_least() {
        assert_eq!(share(2, 2, 5, 16), 1);
        assert_eq!(share(1, 0, 0, 0), 1);
    }
}
