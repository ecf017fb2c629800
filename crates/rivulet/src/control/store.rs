//! Durable, atomic storage of stream metadata: one JSON document replaced as a whole by
//! write-to-temp, fsync, rename, fsync of the directory. A crash leaves either the old or
//! the new document, never a mix.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use seglog::fs::{Fs, StdFs};
use serde::{Deserialize, Serialize};

use super::{AccountMeta, StreamMeta};

const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Document {
    version: u32,
    streams: Vec<StreamMeta>,
    #[serde(default)]
    account: AccountMeta,
}

pub struct MetaStore {
    path: PathBuf,
    fs: Arc<dyn Fs>,
}

impl MetaStore {
    pub fn new(data_dir: &Path) -> MetaStore {
        MetaStore::with_fs(Arc::new(StdFs), data_dir)
    }

    /// On an injected file system (power-loss tests).
    pub fn with_fs(fs: Arc<dyn Fs>, data_dir: &Path) -> MetaStore {
        MetaStore {
            path: data_dir.join("streams.json"),
            fs,
        }
    }

    pub fn load(&self) -> std::io::Result<(Vec<StreamMeta>, AccountMeta)> {
        let bytes = match self.fs.read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Default::default()),
            Err(e) => return Err(e),
        };
        let doc: Document = serde_json::from_slice(&bytes).map_err(|e| {
            std::io::Error::new(
                ErrorKind::InvalidData,
                format!("{} is not valid stream metadata: {e}", self.path.display()),
            )
        })?;
        if doc.version != FORMAT_VERSION {
            return Err(std::io::Error::new(
                ErrorKind::InvalidData,
                format!(
                    "{} has format version {}, expected {FORMAT_VERSION}",
                    self.path.display(),
                    doc.version
                ),
            ));
        }
        Ok((doc.streams, doc.account))
    }

    pub fn save<'a>(
        &self,
        streams: impl Iterator<Item = &'a StreamMeta>,
        account: &AccountMeta,
    ) -> std::io::Result<()> {
        let doc = Document {
            version: FORMAT_VERSION,
            streams: streams.cloned().collect(),
            account: account.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other)?;
        write_atomic_with(self.fs.as_ref(), &self.path, &bytes)
    }
}

/// Replaces the file at `path` with `bytes`: write to a temporary file, fsync, rename, fsync
/// the directory. A crash leaves the old or the new content.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(&StdFs, path, bytes)
}

/// `write_atomic` on a given file system.
pub fn write_atomic_with(fs: &dyn Fs, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let file = fs.create(&tmp)?;
    file.write_all_at(bytes, 0)?;
    file.sync()?;
    fs.rename(&tmp, path)?;
    fs.sync_dir(path.parent().expect("file has a directory"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use seglog::fs::{Crash, SimFs};

    fn stream(name: &str) -> StreamMeta {
        serde_json::from_value(serde_json::json!({
            "name": name, "created_ms": 1, "status": "ACTIVE", "pending": null,
            "mode": "PROVISIONED", "retention_hours": 24, "tags": {}, "shards": [],
            "next_shard_index": 0, "max_record_size_kib": 1024, "shard_level_metrics": [],
        }))
        .unwrap()
    }

    /// A crash of every kind at every file-system step of a metadata save leaves the old
    /// document or the new one, never neither and never a mix.
    #[test]
    fn a_crash_at_any_step_of_a_save_keeps_the_old_or_the_new_document() {
        let dir = Path::new("/data");
        let account = AccountMeta::default();
        let names = |store: &MetaStore| -> Vec<String> {
            store
                .load()
                .unwrap()
                .0
                .into_iter()
                .map(|s| s.name)
                .collect()
        };
        // Count the steps of one save.
        let probe = SimFs::new();
        probe.create_dir_all(dir).unwrap();
        let store = MetaStore::with_fs(Arc::new(probe.clone()), dir);
        store.save([stream("old")].iter(), &account).unwrap();
        let before = probe.mutations();
        store
            .save([stream("old"), stream("new")].iter(), &account)
            .unwrap();
        let steps = probe.mutations() - before;
        assert!(steps >= 4, "create, write, sync, rename, dir sync: {steps}");
        let mut outcomes = std::collections::BTreeSet::new();
        for (k, how) in (0..=steps).flat_map(|k| Crash::ALL.map(|how| (k, how))) {
            let fs = SimFs::new();
            fs.create_dir_all(dir).unwrap();
            fs.sync_dir(Path::new("/")).unwrap();
            let store = MetaStore::with_fs(Arc::new(fs.clone()), dir);
            store.save([stream("old")].iter(), &account).unwrap();
            fs.fail_after(k);
            let saved = store.save([stream("old"), stream("new")].iter(), &account);
            fs.crash_as(how);
            let got = names(&MetaStore::with_fs(Arc::new(fs.clone()), dir));
            if saved.is_ok() {
                assert_eq!(
                    got,
                    ["old", "new"],
                    "a completed save is durable ({how:?} at {k})"
                );
            } else {
                assert!(
                    got == ["old"] || got == ["old", "new"],
                    "{how:?} at {k}: {got:?}"
                );
            }
            outcomes.insert(got.len());
        }
        assert_eq!(
            outcomes.len(),
            2,
            "some crashes keep the old document, some the new"
        );
    }
}
