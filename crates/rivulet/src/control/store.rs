//! Durable, atomic storage of stream metadata: one JSON document replaced as a whole by
//! write-to-temp, fsync, rename, fsync of the directory. A crash leaves either the old or
//! the new document, never a mix.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

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
}

impl MetaStore {
    pub fn new(data_dir: &Path) -> MetaStore {
        MetaStore {
            path: data_dir.join("streams.json"),
        }
    }

    pub fn load(&self) -> std::io::Result<(Vec<StreamMeta>, AccountMeta)> {
        let bytes = match fs::read(&self.path) {
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
        write_atomic(&self.path, &bytes)
    }
}

/// Replaces the file at `path` with `bytes`: write to a temporary file, fsync, rename, fsync
/// the directory. A crash leaves the old or the new content.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    let dir = path.parent().expect("file has a directory");
    File::open(dir)?.sync_all()
}
