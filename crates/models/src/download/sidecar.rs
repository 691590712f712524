//! `<dest>.part.json`: what the `.part` file beside it holds, so a later run (after a pause,
//! a crash or a kill) fetches only the missing ranges of the same remote file.

use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ranges::RangeSet;

const VERSION: u32 = 1;

/// The remote file a `.part` belongs to: a resume is allowed only when all of it still matches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Identity {
    /// The URL the caller asked for (before redirects; signed CDN URLs change every time).
    pub url: String,
    /// `X-Linked-Etag` (Hugging Face: the LFS sha256) when present, else the final `ETag`.
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(default)]
    pub last_modified: Option<String>,
    pub total: u64,
}

impl Identity {
    /// Whether a `.part` made for `self` may be resumed now that the server describes `now`.
    /// With an ETag on either side only the ETag decides; without one, `Last-Modified`.
    pub(crate) fn same_file(&self, now: &Identity) -> bool {
        if self.url != now.url || self.total != now.total {
            return false;
        }
        if self.etag.is_some() || now.etag.is_some() {
            return self.etag == now.etag;
        }
        self.last_modified == now.last_modified
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Sidecar {
    pub version: u32,
    #[serde(flatten)]
    pub identity: Identity,
    /// Byte ranges of the `.part` known to be written (recorded only after the write returned,
    /// and saved only after the `.part` was synced).
    pub done: RangeSet,
}

impl Sidecar {
    pub(crate) fn new(identity: Identity, done: RangeSet) -> Self {
        Self { version: VERSION, identity, done }
    }

    /// Reads a sidecar; `None` (logged) when it is missing, unreadable, corrupt or of another
    /// version: the caller then starts from zero.
    pub(crate) fn load(path: &Path) -> Option<Self> {
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read download state; starting over");
                return None;
            }
        };
        match serde_json::from_slice::<Sidecar>(&text) {
            Ok(s) if s.version == VERSION => {
                let done = s.done.normalized(s.identity.total);
                Some(Self { done, ..s })
            }
            Ok(s) => {
                tracing::warn!(path = %path.display(), version = s.version, "download state of another version; starting over");
                None
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "corrupt download state; starting over");
                None
            }
        }
    }

    /// Writes the sidecar atomically: a synced temporary file renamed over the old one, so a
    /// crash leaves either the old state or the new one, never half of one.
    pub(crate) fn save(&self, path: &Path) -> io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        let json = serde_json::to_vec(self).map_err(io::Error::other)?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        // Owner-only whatever the umask: it names what the user downloads.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(etag: Option<&str>, modified: Option<&str>) -> Identity {
        Identity { url: "https://example.com/m.gguf".into(), etag: etag.map(Into::into), last_modified: modified.map(Into::into), total: 100 }
    }

    #[test]
    fn same_file_rules() {
        assert!(id(Some("a"), None).same_file(&id(Some("a"), Some("x"))));
        assert!(!id(Some("a"), None).same_file(&id(Some("b"), None)));
        assert!(!id(Some("a"), None).same_file(&id(None, None)));
        assert!(id(None, Some("x")).same_file(&id(None, Some("x"))));
        assert!(!id(None, Some("x")).same_file(&id(None, Some("y"))));
        assert!(id(None, None).same_file(&id(None, None)));
        let mut other_url = id(Some("a"), None);
        other_url.url.push('2');
        assert!(!id(Some("a"), None).same_file(&other_url));
        let mut other_size = id(Some("a"), None);
        other_size.total = 99;
        assert!(!id(Some("a"), None).same_file(&other_size));
    }

    #[test]
    fn save_and_load_round_trip_and_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.gguf.part.json");
        assert!(Sidecar::load(&path).is_none());
        let mut done = RangeSet::new();
        done.insert(0, 10);
        done.insert(50, 60);
        let s = Sidecar::new(id(Some("e"), None), done);
        s.save(&path).expect("save");
        assert_eq!(Sidecar::load(&path), Some(s));
        std::fs::write(&path, b"{\"version\":1,\"url\":").expect("write");
        assert!(Sidecar::load(&path).is_none());
        std::fs::write(&path, br#"{"version":9,"url":"u","total":1,"done":[]}"#).expect("write");
        assert!(Sidecar::load(&path).is_none());
        // Ranges past the end are clipped.
        std::fs::write(&path, br#"{"version":1,"url":"u","total":10,"done":[[5,50],[0,2]]}"#).expect("write");
        let loaded = Sidecar::load(&path).expect("load");
        assert_eq!(loaded.done.ranges(), &[(0, 2), (5, 10)]);
    }
}
