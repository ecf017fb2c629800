//! The file system under a log, passed in: `StdFs` is the real one; `SimFs` keeps every file
//! in memory twice, as written and as durable, so a test can cut the power at any moment and
//! lose exactly what was never fsynced.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, ErrorKind};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// An open file: positional reads and writes, length, fsync.
pub trait FsFile: Send + Sync {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn size(&self) -> io::Result<u64>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the file's contents (and length) durable.
    fn sync(&self) -> io::Result<()>;
    /// Makes every file of this file's file system durable at once (Linux `syncfs`): one
    /// journal commit instead of one fsync per file. Unsupported unless implemented.
    fn sync_filesystem(&self) -> io::Result<()> {
        Err(io::Error::from(ErrorKind::Unsupported))
    }
    /// Identifies the file system the file is on, for grouping files under
    /// `sync_filesystem`.
    fn filesystem_id(&self) -> Option<u64> {
        None
    }
}

/// Directory operations. Creations, renames and removals become durable only through
/// `sync_dir` of the directory holding them.
pub trait Fs: Send + Sync {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// File names in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn FsFile>>;
    /// Creates or truncates.
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FsFile>>;
    fn open(&self, path: &Path) -> io::Result<Arc<dyn FsFile>>;
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

impl FsFile for std::fs::File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        std::fs::File::set_len(self, len)
    }
    fn sync(&self) -> io::Result<()> {
        self.sync_data()
    }
    fn sync_filesystem(&self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: `syncfs` only reads the descriptor, which `self` keeps open.
        if unsafe { libc::syncfs(self.as_raw_fd()) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
    fn filesystem_id(&self) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        self.metadata().ok().map(|m| m.dev())
    }
}

impl Fs for StdFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect()
    }
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Arc::new(file))
    }
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Arc::new(file))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        Ok(Arc::new(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)?,
        ))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }
}

/// How a `SimFs` machine ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    /// Power loss: every write and every directory change not yet synced is gone.
    PowerLoss,
    /// Power loss after the file system wrote its journal of directory changes but before
    /// the file data (ext4 commits metadata by itself every few seconds): every creation,
    /// rename and removal stays as made, every file's contents go back to their last sync,
    /// so a file created just before the loss is there and empty.
    EntriesKept,
    /// As `EntriesKept`, but the loss comes halfway through writing back: a file that was
    /// only appended to since its last sync keeps the first half of the appended bytes.
    TornTail,
    /// The process dies and the kernel keeps its page cache (SIGKILL): nothing written is
    /// lost, whether synced or not.
    ProcessKill,
}

impl Crash {
    pub const ALL: [Crash; 4] = [
        Crash::PowerLoss,
        Crash::EntriesKept,
        Crash::TornTail,
        Crash::ProcessKill,
    ];
}

/// An in-memory file system that models power loss.
///
/// Every file has a live image (what reads see) and a durable image (what `sync` last
/// saved); every directory entry is live or durable likewise. `crash` drops everything not
/// durable; `crash_as` ends the machine in one of the other ways of `Crash`. `fail_after(n)`
/// makes the n-th next mutating call and all after it fail, as if the machine died there;
/// tests then `crash` (or `crash_as`) and reopen.
#[derive(Clone, Default)]
pub struct SimFs {
    state: Arc<Mutex<SimState>>,
}

#[derive(Default)]
struct SimState {
    files: HashMap<u64, Arc<Mutex<SimData>>>,
    live: BTreeMap<PathBuf, u64>,
    durable: BTreeMap<PathBuf, u64>,
    next_id: u64,
    /// Mutating calls left before the simulated machine dies; `None` is never.
    budget: Option<u64>,
    mutations: u64,
    /// File syncs fail (EIO) while set, as on a failing disk.
    failing_syncs: bool,
}

#[derive(Default)]
struct SimData {
    live: Vec<u8>,
    durable: Vec<u8>,
}

struct SimFile {
    fs: SimFs,
    data: Arc<Mutex<SimData>>,
}

impl SimFs {
    pub fn new() -> SimFs {
        SimFs::default()
    }

    /// Lets `n` more mutating calls through, then fails every call.
    pub fn fail_after(&self, n: u64) {
        self.state.lock().expect("simfs lock").budget = Some(n);
    }

    /// Makes every file sync fail with an I/O error until cleared.
    pub fn fail_syncs(&self, failing: bool) {
        self.state.lock().expect("simfs lock").failing_syncs = failing;
    }

    /// Mutating calls made so far (writes, syncs, creations, renames, removals).
    pub fn mutations(&self) -> u64 {
        self.state.lock().expect("simfs lock").mutations
    }

    /// Power loss: every file and directory entry goes back to its durable image, and the
    /// machine works again.
    pub fn crash(&self) {
        self.crash_as(Crash::PowerLoss);
    }

    /// Ends the simulated machine's life in the given way; it then works again.
    pub fn crash_as(&self, how: Crash) {
        let mut s = self.state.lock().expect("simfs lock");
        match how {
            Crash::PowerLoss => s.live = s.durable.clone(),
            Crash::EntriesKept | Crash::TornTail | Crash::ProcessKill => {}
        }
        s.durable = s.live.clone();
        for data in s.files.values() {
            let mut d = data.lock().expect("simfs file lock");
            let d = &mut *d;
            match how {
                Crash::PowerLoss | Crash::EntriesKept => d.live = d.durable.clone(),
                Crash::TornTail => {
                    let synced = d.durable.len();
                    let appended_only = d.live.len() > synced && d.live[..synced] == d.durable[..];
                    if appended_only {
                        d.live.truncate(synced + (d.live.len() - synced) / 2);
                    } else {
                        d.live = d.durable.clone();
                    }
                }
                Crash::ProcessKill => {}
            }
            d.durable = d.live.clone();
        }
        s.budget = None;
    }

    fn mutate(&self) -> io::Result<()> {
        let mut s = self.state.lock().expect("simfs lock");
        if let Some(budget) = s.budget.as_mut() {
            if *budget == 0 {
                return Err(io::Error::other("simulated power loss"));
            }
            *budget -= 1;
        }
        s.mutations += 1;
        Ok(())
    }

    fn alive(&self) -> io::Result<()> {
        match self.state.lock().expect("simfs lock").budget {
            Some(0) => Err(io::Error::other("simulated power loss")),
            _ => Ok(()),
        }
    }

    fn file(&self, id: u64) -> Arc<dyn FsFile> {
        let data = self.state.lock().expect("simfs lock").files[&id].clone();
        Arc::new(SimFile {
            fs: self.clone(),
            data,
        })
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(ErrorKind::NotFound, format!("{} not found", path.display()))
}

impl FsFile for SimFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.fs.alive()?;
        let d = self.data.lock().expect("simfs file lock");
        let start = offset as usize;
        let end = start + buf.len();
        if end > d.live.len() {
            return Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                "read past the end",
            ));
        }
        buf.copy_from_slice(&d.live[start..end]);
        Ok(())
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.fs.mutate()?;
        let mut d = self.data.lock().expect("simfs file lock");
        let end = offset as usize + buf.len();
        if d.live.len() < end {
            d.live.resize(end, 0);
        }
        d.live[offset as usize..end].copy_from_slice(buf);
        Ok(())
    }
    fn size(&self) -> io::Result<u64> {
        self.fs.alive()?;
        Ok(self.data.lock().expect("simfs file lock").live.len() as u64)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.fs.mutate()?;
        self.data
            .lock()
            .expect("simfs file lock")
            .live
            .resize(len as usize, 0);
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        self.fs.mutate()?;
        if self.fs.state.lock().expect("simfs lock").failing_syncs {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        let mut d = self.data.lock().expect("simfs file lock");
        d.durable = d.live.clone();
        Ok(())
    }
    /// Every file's contents become durable (directory entries are left to `sync_dir`, a
    /// weaker promise than a real `syncfs`, so code cannot come to rely on it).
    fn sync_filesystem(&self) -> io::Result<()> {
        self.fs.mutate()?;
        let s = self.fs.state.lock().expect("simfs lock");
        if s.failing_syncs {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        for data in s.files.values() {
            let mut d = data.lock().expect("simfs file lock");
            d.durable = d.live.clone();
        }
        Ok(())
    }
    fn filesystem_id(&self) -> Option<u64> {
        Some(Arc::as_ptr(&self.fs.state) as u64)
    }
}

impl Fs for SimFs {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        self.alive()
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.alive()?;
        let s = self.state.lock().expect("simfs lock");
        Ok(s.live
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        if self
            .state
            .lock()
            .expect("simfs lock")
            .live
            .contains_key(path)
        {
            return Err(io::Error::new(
                ErrorKind::AlreadyExists,
                format!("{} exists", path.display()),
            ));
        }
        self.create(path)
    }
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        self.mutate()?;
        let id = {
            let mut s = self.state.lock().expect("simfs lock");
            let id = s.next_id;
            s.next_id += 1;
            s.files.insert(id, Arc::default());
            s.live.insert(path.to_owned(), id);
            id
        };
        Ok(self.file(id))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        self.alive()?;
        let id = *self
            .state
            .lock()
            .expect("simfs lock")
            .live
            .get(path)
            .ok_or_else(|| not_found(path))?;
        Ok(self.file(id))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.alive()?;
        let s = self.state.lock().expect("simfs lock");
        let id = s.live.get(path).ok_or_else(|| not_found(path))?;
        Ok(s.files[id].lock().expect("simfs file lock").live.clone())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.mutate()?;
        let mut s = self.state.lock().expect("simfs lock");
        let id = s.live.remove(from).ok_or_else(|| not_found(from))?;
        s.live.insert(to.to_owned(), id);
        Ok(())
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.mutate()?;
        let mut s = self.state.lock().expect("simfs lock");
        s.live
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.mutate()?;
        let mut s = self.state.lock().expect("simfs lock");
        let live: Vec<(PathBuf, u64)> = s
            .live
            .iter()
            .filter(|(p, _)| p.parent() == Some(dir))
            .map(|(p, id)| (p.clone(), *id))
            .collect();
        s.durable.retain(|p, _| p.parent() != Some(dir));
        s.durable.extend(live);
        Ok(())
    }
}
