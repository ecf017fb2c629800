//! Dashboards: named JSON bodies in CloudWatch's widget format, kept in one document
//! (`metrics/dashboards.json`) saved atomically on every change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Dashboards one server holds (CloudWatch's default quota).
pub const DASHBOARDS_MAX: usize = 5_000;

#[derive(Clone, Serialize, Deserialize)]
pub struct Dashboard {
    pub body: String,
    pub last_modified_ms: i64,
}

pub struct Dashboards {
    path: PathBuf,
    all: Mutex<BTreeMap<String, Dashboard>>,
}

impl Dashboards {
    pub fn open(dir: &Path) -> anyhow::Result<Dashboards> {
        let path = dir.join("dashboards.json");
        let all = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                anyhow::anyhow!("{} is not a dashboard document: {e}", path.display())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(Dashboards {
            path,
            all: Mutex::new(all),
        })
    }

    fn save(&self, all: &BTreeMap<String, Dashboard>) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(all).map_err(std::io::Error::other)?;
        crate::control::store::write_atomic(&self.path, &bytes)
    }

    pub fn put(&self, name: &str, body: String, now_ms: i64) -> Result<(), String> {
        let mut all = self.all.lock().expect("dashboards lock");
        if !all.contains_key(name) && all.len() >= DASHBOARDS_MAX {
            return Err(format!(
                "The maximum number of dashboards ({DASHBOARDS_MAX}) has been reached."
            ));
        }
        all.insert(
            name.into(),
            Dashboard {
                body,
                last_modified_ms: now_ms,
            },
        );
        self.save(&all).map_err(|e| e.to_string())
    }

    pub fn get(&self, name: &str) -> Option<Dashboard> {
        self.all.lock().expect("dashboards lock").get(name).cloned()
    }

    pub fn list(&self) -> Vec<(String, Dashboard)> {
        let all = self.all.lock().expect("dashboards lock");
        all.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Deletes all the named dashboards, or none if one does not exist (returned).
    pub fn delete(&self, names: &[String]) -> Result<Result<(), String>, String> {
        let mut all = self.all.lock().expect("dashboards lock");
        if let Some(missing) = names.iter().find(|n| !all.contains_key(*n)) {
            return Ok(Err(missing.clone()));
        }
        for n in names {
            all.remove(n);
        }
        self.save(&all).map_err(|e| e.to_string())?;
        Ok(Ok(()))
    }
}
