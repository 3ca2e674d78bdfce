//! The folder store ([`DirStore`]): one JSON file per key (`<kid>.json`,
//! the [`super::document`] format).
//!
//! Files are created with mode 0600 in a 0700 folder and written
//! atomically: temp file, fsync, rename, fsync of the folder. A crash at any
//! moment leaves each key wholly there or not there. Changes happen under
//! an exclusive lock on `.lock` in the folder, so several processes (the
//! CLI next to a running server, replicas on a shared volume) never race;
//! a folder has no transactions, so readers take the lock too, to see a
//! change of several keys whole.

use std::{
    fmt,
    fs::{self, File, OpenOptions},
    io::{self, Write as _},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    time::Duration,
};

use jwks_jose::{b64, crypto::Sealer};

use super::{
    document::{self, MAX_DOCUMENT, Refused},
    store::{Damaged, KeyRecord, KeyStore, LOCK_TIMEOUT, Loaded, StoreLock, Write},
};
use crate::{Error, clock::Deadline};

const LOCK_FILE: &str = ".lock";

/// The key folder.
pub struct DirStore {
    dir: PathBuf,
    sealer: Option<Sealer>,
    accept_clear: bool,
}

impl fmt::Debug for DirStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirStore").field("dir", &self.dir).field("sealed", &self.sealer.is_some()).finish()
    }
}

impl DirStore {
    /// Opens the key folder `dir`, creating it with mode 0700 when it does
    /// not exist (as `serve` does on first start). An existing folder's mode
    /// is never changed: one that others can read gets a warning naming it
    /// and its mode. A path that is not a folder, and a non-empty folder
    /// that is not a key store (`keys.dir = "."`), are refused untouched.
    pub fn open(dir: &Path, sealer: Option<Sealer>) -> Result<Self, Error> {
        let store_err = |e: io::Error| Error::Store(format!("key folder {}: {e}", dir.display()));
        match fs::metadata(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(store_err)?;
            }
            Err(e) => return Err(store_err(e)),
            Ok(md) if !md.is_dir() => {
                return Err(Error::Store(format!(
                    "keys.dir {} is not a folder; point it at a new or empty folder (it was left as it is)",
                    dir.display()
                )));
            }
            Ok(md) => {
                check_is_key_store(dir)?;
                let mode = md.permissions().mode();
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        dir = %dir.display(),
                        mode = %format!("{:o}", mode & 0o7777),
                        "the key folder is readable by others (mode {:o}); `chmod 700 {}` it",
                        mode & 0o7777,
                        dir.display()
                    );
                }
            }
        }
        Ok(DirStore { dir: dir.to_path_buf(), sealer, accept_clear: false })
    }

    /// Loads key files in clear even though a KEK is set: only for
    /// `keys migrate`, which seals them on their way into the database.
    pub fn accepting_clear_keys(mut self) -> Self {
        self.accept_clear = true;
        self
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether private keys are sealed at rest.
    pub fn is_sealed(&self) -> bool {
        self.sealer.is_some()
    }

    /// Takes the exclusive store lock, waiting at most `timeout` on a
    /// monotonic deadline (a wall clock that jumps neither shortens nor
    /// stretches the wait).
    pub fn lock(&self, timeout: Duration) -> Result<StoreLock, Error> {
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc_flags::NOFOLLOW_NONBLOCK)
            .open(&path)
            .map_err(|e| Error::Store(format!("cannot open lock file {}: {e}", path.display())))?;
        if !file.metadata().map(|m| m.is_file()).unwrap_or(false) {
            return Err(Error::Store(format!("lock file {} is not a regular file", path.display())));
        }
        let deadline = Deadline::after(timeout);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(StoreLock::new(file)),
                Err(fs::TryLockError::WouldBlock) => {
                    if deadline.passed() {
                        return Err(Error::Store(format!(
                            "key store {} is locked by another process (waited {}s)",
                            self.dir.display(),
                            timeout.as_secs()
                        )));
                    }
                    crate::clock::pause(Duration::from_millis(20));
                }
                Err(fs::TryLockError::Error(e)) => {
                    return Err(Error::Store(format!("cannot lock {}: {e}", path.display())));
                }
            }
        }
    }

    /// A cheap fingerprint of the folder's contents (names, sizes and
    /// modification times of key files), to notice changes by others.
    pub fn fingerprint(&self) -> Result<u64, Error> {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut entries = Vec::new();
        for e in fs::read_dir(&self.dir).map_err(|e| Error::Store(format!("{}: {e}", self.dir.display())))? {
            let e = e.map_err(|e| Error::Store(format!("{}: {e}", self.dir.display())))?;
            let name = e.file_name();
            if !is_key_file(&name.to_string_lossy()) {
                continue;
            }
            let md = e.metadata().ok();
            entries.push((
                name,
                md.as_ref().map(|m| m.len()),
                md.and_then(|m| m.modified().ok()).and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()),
            ));
        }
        entries.sort();
        let mut h = DefaultHasher::new();
        entries.hash(&mut h);
        Ok(h.finish())
    }

    /// Loads every key file; a file that does not load is reported, not
    /// fatal. Under the lock, so that a change of several files is seen whole.
    fn load(&self, _held: &StoreLock) -> Result<Loaded, Error> {
        let mut out = Loaded { fingerprint: self.fingerprint()?, ..Loaded::default() };
        let rd = fs::read_dir(&self.dir).map_err(|e| Error::Store(format!("{}: {e}", self.dir.display())))?;
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| is_key_file(n))
            .collect();
        names.sort();
        for name in names {
            match self.load_file(&name) {
                Ok(rec) => out.keys.push(rec),
                Err((kid, reason)) => out.damaged.push(Damaged { file: name, kid, reason }),
            }
        }
        Ok(out)
    }

    fn load_file(&self, name: &str) -> Result<KeyRecord, Refused> {
        let bytes = read_limited(&self.dir.join(name), MAX_DOCUMENT)?;
        let require_sealed = self.sealer.is_some() && !self.accept_clear;
        let file = document::parse(&bytes, require_sealed)?;
        if name != file_name(&file.kid) {
            return Err((Some(file.kid), "file name does not match its kid".into()));
        }
        document::decode(file, self.sealer.as_ref())
    }
}

/// Flags for opening files in the key folder: never follow a symlink,
/// never wait on a FIFO or a device.
mod libc_flags {
    pub(super) const NOFOLLOW_NONBLOCK: i32 = libc::O_NOFOLLOW | libc::O_NONBLOCK;
}

/// Reads at most `limit` bytes of the regular file `path`: a symlink, a
/// FIFO, a device or a folder is refused without blocking, and a larger
/// file is refused after reading `limit + 1` bytes, never whole.
fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, Refused> {
    use std::io::Read;
    let md = fs::symlink_metadata(path).map_err(|e| (None, format!("cannot read: {e}")))?;
    if !md.file_type().is_file() {
        return Err((None, "not a regular file; refused".into()));
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc_flags::NOFOLLOW_NONBLOCK)
        .open(path)
        .map_err(|e| (None, format!("cannot open: {e}")))?;
    // Checked again on the open file: it may have been swapped meanwhile.
    let md = file.metadata().map_err(|e| (None, format!("cannot read: {e}")))?;
    if !md.is_file() {
        return Err((None, "not a regular file; refused".into()));
    }
    if md.len() > limit {
        return Err((None, format!("file larger than {} KiB; refused", limit / 1024)));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(md.len()).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes).map_err(|e| (None, format!("cannot read: {e}")))?;
    if bytes.len() as u64 > limit {
        return Err((None, format!("file larger than {} KiB; refused", limit / 1024)));
    }
    Ok(bytes)
}

/// write, `lost+found` (a volume's root) or `.gitkeep`.
fn check_is_key_store(dir: &Path) -> Result<(), Error> {
    let rd = fs::read_dir(dir).map_err(|e| Error::Store(format!("key folder {}: {e}", dir.display())))?;
    let mut foreign: Vec<String> = Vec::new();
    let mut count = 0usize;
    for e in rd.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        let known = name == LOCK_FILE
            || name == "lost+found"
            || name == ".gitkeep"
            || is_key_file(&name)
            || (name.starts_with('.') && name.ends_with(".tmp"));
        if !known {
            count += 1;
            if foreign.len() < 3 {
                foreign.push(name);
            }
        }
    }
    if foreign.is_empty() {
        return Ok(());
    }
    foreign.sort();
    Err(Error::Store(format!(
        "keys.dir {} is not a key store: it holds {count} other entries ({}{}); point keys.dir at a new or empty \
         folder (nothing was changed)",
        dir.display(),
        foreign.join(", "),
        if count > foreign.len() { ", ..." } else { "" }
    )))
}

impl DirStore {
    /// Writes `record` atomically (temp file, fsync, rename, fsync folder).
    fn put(&self, _held: &StoreLock, record: &KeyRecord) -> Result<(), Error> {
        let kid = &record.meta.kid;
        if fs::symlink_metadata(self.dir.join(file_name(kid))).is_err() {
            // A new key: never more than verifiers accept in one JWKS.
            let count = fs::read_dir(&self.dir)
                .map_err(|e| Error::Store(format!("{}: {e}", self.dir.display())))?
                .filter_map(Result::ok)
                .filter(|e| is_key_file(&e.file_name().to_string_lossy()))
                .count();
            if count >= jwks_verifier::MAX_KEYS {
                return Err(Error::Store(format!(
                    "key folder {} holds {count} keys, the most a verifier accepts ({}); key {kid} is not added \
                     (revoked and expired keys leave on their own; remove damaged files)",
                    self.dir.display(),
                    jwks_verifier::MAX_KEYS
                )));
            }
        }
        let json = document::encode(record, self.sealer.as_ref())?;
        write_atomic(&self.dir, &file_name(kid), &json)
            .map_err(|e| Error::Store(format!("writing key {kid} to {}: {e}", self.dir.display())))
    }

    /// Removes temp files that a process killed mid-write left behind.
    /// Under the lock: every write happens under it, so no temp file is in
    /// use then. Returns how many were removed.
    fn sweep_temp_files(&self, _held: &StoreLock) -> usize {
        let Ok(rd) = fs::read_dir(&self.dir) else { return 0 };
        rd.filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with('.') && name.ends_with(".tmp")
            })
            .filter(|e| fs::remove_file(e.path()).is_ok())
            .count()
    }

    /// Deletes the file of `kid` (and syncs the folder).
    fn delete(&self, _held: &StoreLock, kid: &str) -> Result<(), Error> {
        let path = self.dir.join(file_name(kid));
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir).map_err(|e| Error::Store(format!("{}: {e}", self.dir.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Store(format!("deleting {}: {e}", path.display()))),
        }
    }
}

impl KeyStore for DirStore {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }
    fn is_sealed(&self) -> bool {
        self.sealer.is_some()
    }
    fn lock(&self, timeout: Duration) -> Result<StoreLock, Error> {
        DirStore::lock(self, timeout)
    }
    fn fingerprint(&self) -> Result<u64, Error> {
        DirStore::fingerprint(self)
    }
    fn read(&self, held: Option<&StoreLock>) -> Result<Loaded, Error> {
        match held {
            Some(lock) => self.load(lock),
            None => self.load(&self.lock(LOCK_TIMEOUT)?),
        }
    }
    fn write(&self, held: &StoreLock, writes: &[Write]) -> Result<(), Error> {
        for w in writes {
            match w {
                Write::Put(record) => self.put(held, record)?,
                Write::Delete(kid) => self.delete(held, kid)?,
            }
        }
        Ok(())
    }
    fn recover(&self, held: &StoreLock) -> usize {
        self.sweep_temp_files(held)
    }
}

fn file_name(kid: &str) -> String {
    format!("{kid}.json")
}

/// Key files are `<kid>.json` where the kid is a base64url thumbprint.
fn is_key_file(name: &str) -> bool {
    name.strip_suffix(".json")
        .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let mut suffix = [0u8; 8];
    jwks_jose::crypto::fill_random(&mut suffix).map_err(|e| io::Error::other(e.to_string()))?;
    let tmp = dir.join(format!(".{name}.{}.tmp", b64::encode(suffix)));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, dir.join(name))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
impl DirStore {
    /// Writes `record` under the lock (tests).
    pub(crate) fn test_put(&self, record: &KeyRecord) -> Result<(), Error> {
        self.put(&self.lock(LOCK_TIMEOUT)?, record)
    }
    /// Deletes `kid` under the lock (tests).
    pub(crate) fn test_delete(&self, kid: &str) -> Result<(), Error> {
        self.delete(&self.lock(LOCK_TIMEOUT)?, kid)
    }
    /// Reads under the lock (tests).
    pub(crate) fn test_load(&self) -> Result<Loaded, Error> {
        KeyStore::read(self, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::lifecycle::Policy;
    use jwks_jose::{Algorithm, clock::UnixTime};

    fn record(alg: Algorithm) -> KeyRecord {
        let pkcs8 = jwks_jose::SigningKey::generate(alg, 2048).unwrap();
        let policy = Policy {
            rotation_period: Duration::from_secs(3600),
            publish_ahead: Duration::from_secs(600),
            retire_after: Duration::from_secs(600),
        };
        KeyRecord::new(alg, pkcs8, policy.immediate(UnixTime::from_secs(1000))).unwrap()
    }

    #[test]
    fn keys_round_trip_with_private_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let store = DirStore::open(&dir, None).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        let rec = record(Algorithm::ES256);
        store.test_put(&rec).unwrap();
        let path = dir.join(file_name(&rec.meta.kid));
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let loaded = store.test_load().unwrap();
        assert!(loaded.damaged.is_empty());
        assert_eq!(loaded.keys.len(), 1);
        assert_eq!(loaded.keys[0].meta, rec.meta);
        assert_eq!(loaded.keys[0].pkcs8, rec.pkcs8);
        store.test_delete(&rec.meta.kid).unwrap();
        assert!(store.test_load().unwrap().keys.is_empty());
        // No temp files are left behind: only the lock file.
        let names: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, vec![LOCK_FILE.to_string()]);
        // One left by a process killed mid-write is swept; key files stay.
        store.test_put(&rec).unwrap();
        fs::write(dir.join(format!(".{}.json.abc.tmp", rec.meta.kid)), b"{partial").unwrap();
        assert_eq!(store.sweep_temp_files(&store.lock(Duration::from_secs(1)).unwrap()), 1);
        assert_eq!(store.test_load().unwrap().keys.len(), 1);
    }

    #[test]
    fn sealed_keys_need_the_right_kek_and_damage_is_reported_by_file_and_kid() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DirStore::open(tmp.path(), Some(Sealer::new(&[1; 32]).unwrap())).unwrap();
        let rec = record(Algorithm::ES256);
        store.test_put(&rec).unwrap();
        let text = fs::read_to_string(tmp.path().join(file_name(&rec.meta.kid))).unwrap();
        assert!(text.contains("\"sealed\"") && !text.contains("\"pkcs8\""));
        assert_eq!(store.test_load().unwrap().keys.len(), 1);

        let wrong = DirStore::open(tmp.path(), Some(Sealer::new(&[2; 32]).unwrap())).unwrap();
        let loaded = wrong.test_load().unwrap();
        assert!(loaded.keys.is_empty());
        assert_eq!(loaded.damaged[0].kid.as_deref(), Some(rec.meta.kid.as_str()));
        assert!(loaded.damaged[0].reason.contains("unseal"), "{:?}", loaded.damaged);

        let plain = DirStore::open(tmp.path(), None).unwrap();
        assert!(plain.test_load().unwrap().damaged[0].reason.contains("not set"));

        fs::write(tmp.path().join("broken.json"), b"{ not json").unwrap();
        let loaded = store.test_load().unwrap();
        assert_eq!(loaded.keys.len(), 1, "one bad file does not hide the good one");
        assert_eq!(loaded.damaged.len(), 1);
        assert_eq!(loaded.damaged[0].file, "broken.json");
    }

    #[test]
    fn the_lock_is_exclusive_and_times_out() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DirStore::open(tmp.path(), None).unwrap();
        let held = store.lock(Duration::from_secs(1)).unwrap();
        // A second handle on the lock file conflicts even within one process.
        let other = DirStore::open(tmp.path(), None).unwrap();
        let result = other.lock(Duration::from_millis(200));
        assert!(matches!(result, Err(Error::Store(m)) if m.contains("locked")));
        drop(held);
        assert!(other.lock(Duration::from_millis(200)).is_ok());
    }

    /// Loads on another thread; `None` when it did not finish within 10 s.
    fn load_within_10s(store: DirStore) -> Option<Loaded> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(store.test_load().unwrap());
        });
        rx.recv_timeout(Duration::from_secs(10)).ok()
    }

    #[test]
    fn fifo_key_file_does_not_block_rotation() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DirStore::open(tmp.path(), None).unwrap();
        let rec = record(Algorithm::ES256);
        store.test_put(&rec).unwrap();
        let fifo = tmp.path().join("AAAAfifo.json");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        // The lock (and a FIFO in place of the lock file) never blocks either.
        drop(store.lock(Duration::from_secs(1)).unwrap());
        let loaded = load_within_10s(DirStore::open(tmp.path(), None).unwrap()).expect("load does not block on a FIFO");
        assert_eq!(loaded.keys.len(), 1, "the good key still loads");
        assert_eq!(loaded.damaged.len(), 1);
        assert_eq!(loaded.damaged[0].file, "AAAAfifo.json");
        assert!(loaded.damaged[0].reason.contains("not a regular file"), "{:?}", loaded.damaged);
        assert!(store.fingerprint().is_ok());

        let other = tempfile::tempdir().unwrap();
        let made = std::process::Command::new("mkfifo").arg(other.path().join(LOCK_FILE)).status().unwrap();
        assert!(made.success());
        let s = DirStore::open(other.path(), None).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(s.lock(Duration::from_secs(1)).is_err());
        });
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(true), "a FIFO lock file is refused at once");
    }

    #[test]
    fn oversized_key_file_is_not_read_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DirStore::open(tmp.path(), None).unwrap();
        // 1 GiB, sparse: reading it whole would take 1 GiB of memory.
        let big = File::create(tmp.path().join("AAAAbig.json")).unwrap();
        big.set_len(1 << 30).unwrap();
        // Just over the limit, and a symlink to a good key.
        fs::write(tmp.path().join("AAAAjust.json"), vec![b' '; 64 * 1024 + 1]).unwrap();
        let rec = record(Algorithm::ES256);
        store.test_put(&rec).unwrap();
        std::os::unix::fs::symlink(tmp.path().join(file_name(&rec.meta.kid)), tmp.path().join("AAAAlink.json"))
            .unwrap();
        let loaded = load_within_10s(store).expect("load finishes");
        assert_eq!(loaded.keys.len(), 1);
        let reasons: std::collections::BTreeMap<&str, &str> =
            loaded.damaged.iter().map(|d| (d.file.as_str(), d.reason.as_str())).collect();
        assert!(reasons["AAAAbig.json"].contains("larger than 64 KiB"), "{reasons:?}");
        assert!(reasons["AAAAjust.json"].contains("larger than 64 KiB"), "{reasons:?}");
        assert!(reasons["AAAAlink.json"].contains("not a regular file"), "{reasons:?}");
        // The limit holds for a file that grows after its size was read.
        let path = tmp.path().join("grows.json");
        fs::write(&path, vec![b' '; 100]).unwrap();
        assert_eq!(read_limited(&path, 64).unwrap_err().1, "file larger than 0 KiB; refused");
        assert_eq!(read_limited(&path, 100).unwrap().len(), 100);
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn keys_list_does_not_chmod_an_existing_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("shared");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
        let store = DirStore::open(&dir, None).unwrap();
        store.test_load().unwrap();
        assert_eq!(mode(&dir), 0o1777, "the sticky bit and the mode stay");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let store = DirStore::open(&dir, None).unwrap();
        store.test_put(&record(Algorithm::ES256)).unwrap();
        assert_eq!(mode(&dir), 0o755);
        // A folder it creates is 0700.
        DirStore::open(&tmp.path().join("new/keys"), None).unwrap();
        assert_eq!(mode(&tmp.path().join("new/keys")), 0o700);
    }

    #[test]
    fn keys_dir_pointing_at_a_file_is_refused_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("issuer.toml");
        fs::write(&file, b"issuer = 1\n").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let err = DirStore::open(&file, None).unwrap_err();
        assert!(err.to_string().contains("is not a folder"), "{err}");
        assert_eq!(mode(&file), 0o644);
        assert_eq!(fs::read(&file).unwrap(), b"issuer = 1\n");
    }

    #[test]
    fn non_empty_foreign_folder_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("Cargo.toml"), b"[package]").unwrap();
        fs::write(tmp.path().join("notes.txt"), b"x").unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let err = DirStore::open(tmp.path(), None).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("is not a key store") && msg.contains("Cargo.toml"), "{msg}");
        assert_eq!(mode(tmp.path()), 0o755);
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 2, "nothing was written");
        // An empty folder and a key store open.
        let empty = tempfile::tempdir().unwrap();
        let store = DirStore::open(empty.path(), None).unwrap();
        store.test_put(&record(Algorithm::ES256)).unwrap();
        store.lock(Duration::from_secs(1)).unwrap();
        fs::write(empty.path().join(".gitkeep"), b"").unwrap();
        assert!(DirStore::open(empty.path(), None).is_ok());
    }

    #[test]
    fn the_folder_store_refuses_to_grow_past_what_verifiers_accept() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DirStore::open(tmp.path(), None).unwrap();
        let rec = record(Algorithm::ES256);
        store.test_put(&rec).unwrap();
        let doc = fs::read(tmp.path().join(file_name(&rec.meta.kid))).unwrap();
        for i in 1..jwks_verifier::MAX_KEYS {
            fs::write(tmp.path().join(format!("filler{i}.json")), &doc).unwrap();
        }
        let err = store.test_put(&record(Algorithm::ES256)).unwrap_err();
        assert!(err.to_string().contains("holds 100 keys"), "{err}");
        // Rewriting a key already there (a timeline change) still works.
        store.test_put(&rec).unwrap();
    }
}
