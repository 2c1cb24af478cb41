use super::Global;
use crate::container::state::Container;
use anyhow::{bail, Result};

fn user_name(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    crate::passwd::field_for_uid(&passwd, uid, 0).map_or_else(|| format!("#{uid}"), str::to_string)
}

/// Go's tabwriter as runc configures it: min width 12, padding 3, the last column unpadded.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map_or(0, Vec::len);
    let mut widths = vec![12usize; cols];
    for r in rows {
        for (i, cell) in r.iter().enumerate().take(cols.saturating_sub(1)) {
            widths[i] = widths[i].max(cell.len() + 3);
        }
    }
    let mut out = String::new();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            if i + 1 < cols {
                out.push_str(&format!("{cell:<w$}", w = widths[i]));
            } else {
                out.push_str(cell);
            }
        }
        out.push('\n');
    }
    out
}

pub fn run(g: &Global, format: &str, quiet: bool) -> Result<i32> {
    if format != "table" && format != "json" {
        bail!("invalid format option");
    }
    let mut ids: Vec<String> = match std::fs::read_dir(&g.root) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            // Not every dir in the root is a container (the seccomp cache, seccomp/cache.rs).
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| crate::container::state::validate_id(n).is_ok())
            })
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        // No container made yet under the default root; a --root that does not exist is
        // most likely a typo, reported as runc does (1.2+, with the logic as 1.5 fixed it).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !g.root_given => Vec::new(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("open {}: no such file or directory", g.root.display())
        }
        Err(e) => bail!("read {}: {e}", g.root.display()),
    };
    ids.sort();
    let containers: Vec<(Container, u32)> = ids
        .iter()
        .filter_map(|id| {
            let c = Container::load(&g.root, id, false).ok()?;
            let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&c.dir).ok()?);
            Some((c, owner))
        })
        .collect();
    if quiet {
        let ids: String = containers.iter().map(|(c, _)| format!("{}\n", c.state.id)).collect();
        super::out(&ids)?;
        return Ok(0);
    }
    if format == "json" {
        let v: Vec<_> = containers
            .iter()
            .map(|(c, owner)| c.oci_state(c.status(), user_name(*owner)))
            .collect();
        // runc marshals an empty list as null.
        if v.is_empty() {
            super::out("null\n")?;
        } else {
            super::out(&(serde_json::to_string(&v)? + "\n"))?;
        }
        return Ok(0);
    }
    let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
        .map(String::from)
        .to_vec()];
    for (c, owner) in &containers {
        let st = c.status();
        let pid = if st == crate::container::state::Status::Stopped {
            0
        } else {
            c.state.pid
        };
        rows.push(vec![
            c.state.id.clone(),
            pid.to_string(),
            st.as_str().to_string(),
            c.state.bundle.clone(),
            c.state.created.clone(),
            user_name(*owner),
        ]);
    }
    super::out(&table(&rows))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_matches_tabwriter() {
        let rows = vec![
            vec!["ID".to_string(), "CREATED".into(), "OWNER".into()],
            vec!["c1".to_string(), "2026-11-22T06:37:51.520810805Z".into(), "root".into()],
        ];
        assert_eq!(
            super::table(&rows),
            "ID          CREATED                          OWNER\nc1          2026-11-22T06:37:51.520810805Z   root\n"
        );
    }
}
