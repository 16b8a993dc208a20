//! The output folder: made and checked before any traffic (writable, room for the results), and
//! locked for the whole run, so two runs given one `--out` cannot interleave their files.
//!
//! The lock is `flock` on `.stampede.lock` inside the folder, which holds the owner's process id for
//! the message the second run prints. The kernel drops the lock when the process ends, however it
//! ends, so a killed run never leaves a stale lock behind (the file stays; it is only a name).

use std::fs::File;
use std::io::{Read as _, Seek as _, Write as _};
use std::path::Path;
use std::time::Duration;

use super::RunError;
use crate::scenario::Plan;
use crate::scenario::plan::LoadModel;

/// The lock file's name inside the output folder.
pub const LOCK_FILE: &str = ".stampede.lock";

/// An exclusive lock on an output folder, released when dropped (or when the process ends).
#[derive(Debug)]
pub struct OutLock {
    _file: File,
}

/// Checks that `dir` can hold result files, creating it if needed, before any traffic: it must be
/// writable, no other run may be writing there, and its file system must have room for about
/// `needed` bytes. The returned lock must be held until the last result file is written.
pub fn prepare_out(dir: &Path, needed: u64) -> Result<OutLock, RunError> {
    let err = |source| RunError::OutDir {
        path: dir.to_path_buf(),
        source,
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        // `create_dir_all` reports "File exists" for a symlink loop or a file in the way; the
        // metadata call says what is really wrong.
        return Err(err(match std::fs::metadata(dir) {
            Err(why) => why,
            Ok(m) if !m.is_dir() => std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "it exists and is not a folder",
            ),
            Ok(_) => e,
        }));
    }
    let lock = lock(dir)?;
    let probe = dir.join(".stampede-write-test");
    std::fs::write(&probe, b"ok").map_err(err)?;
    let _ = std::fs::remove_file(&probe);
    if let Ok(st) = rustix::fs::statvfs(dir) {
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        if free < needed {
            return Err(RunError::DiskFull {
                path: dir.to_path_buf(),
                free,
                needed,
            });
        }
    }
    Ok(lock)
}

fn lock(dir: &Path) -> Result<OutLock, RunError> {
    let err = |source| RunError::OutDir {
        path: dir.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(LOCK_FILE))
        .map_err(err)?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(RunError::OutInUse {
                path: dir.to_path_buf(),
                pid: text.trim().parse().ok(),
            });
        }
        Err(e) => return Err(err(e.into())),
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    Ok(OutLock { _file: file })
}

/// How long a run of `plan` is expected to last, for estimates: a flow bounded by iterations
/// rather than time counts as at most ten minutes, since its curve's length is only a cap.
pub(super) fn expected_length(plan: &Plan) -> Duration {
    plan.flows
        .iter()
        .map(|f| {
            let budgeted = matches!(&f.model, LoadModel::Closed(c) if c.iterations.is_some() || c.per_vu_iterations.is_some());
            let len = if budgeted {
                f.length().min(Duration::from_secs(600))
            } else {
                f.length()
            };
            f.start + len
        })
        .max()
        .unwrap_or_default()
}

/// A generous estimate of the bytes a run's result files take: an `intervals.hlog` line (about
/// 1 KiB at most for a compressed interval histogram) per step, flow and iteration key and
/// interval, plus the end-of-run files.
pub fn estimated_output_bytes(plan: &Plan, interval: Duration) -> u64 {
    let keys: u64 = plan
        .flows
        .iter()
        .map(|f| plan.journeys[f.journey].requests.len() as u64 + 2)
        .sum();
    let secs = expected_length(plan).as_secs_f64();
    let intervals = (secs / interval.as_secs_f64().max(0.001)).ceil() as u64 + 1;
    // Every file but the log holds the same intervals again, as rows and charts.
    keys.saturating_mul(intervals).saturating_mul(1024 + 512) + (4 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_folder_is_refused_with_the_owner() {
        let d = tempfile::tempdir().unwrap();
        let first = prepare_out(d.path(), 0).unwrap();
        match prepare_out(d.path(), 0) {
            Err(RunError::OutInUse { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected OutInUse, got {other:?}"),
        }
        drop(first);
        assert!(prepare_out(d.path(), 0).is_ok(), "released when dropped");
    }

    #[test]
    fn a_symlink_loop_says_so() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        std::os::unix::fs::symlink(d.path().join("b"), &a).unwrap();
        std::os::unix::fs::symlink(&a, d.path().join("b")).unwrap();
        let e = prepare_out(&a, 0).unwrap_err().to_string();
        assert!(e.contains("symbolic links"), "{e}");
    }
}
