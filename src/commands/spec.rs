use anyhow::{anyhow, bail, Result};

const DEFAULT: &str = include_str!("spec_default.json");

/// The config `runc spec` writes; `--rootless` applies runc's rootless changes for the caller.
pub fn generate(rootless: bool) -> Result<serde_json::Value> {
    let mut v: serde_json::Value = serde_json::from_str(DEFAULT)?;
    if rootless {
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        let linux = &mut v["linux"];
        linux["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        linux["gidMappings"] = serde_json::json!([{"containerID": 0, "hostID": gid, "size": 1}]);
        if let Some(ns) = linux["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != "network");
            ns.push(serde_json::json!({"type": "user"}));
        }
        linux.as_object_mut().map(|o| o.remove("resources"));
        for m in v["mounts"].as_array_mut().into_iter().flatten() {
            if m["type"] == "sysfs" {
                *m = serde_json::json!({"destination": "/sys", "type": "none", "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            }
            if let Some(opts) = m["options"].as_array_mut() {
                opts.retain(|o| o != "gid=5");
            }
        }
    }
    Ok(v)
}

pub fn run(bundle: &str, rootless: bool) -> Result<i32> {
    let dir = if bundle.is_empty() {
        std::path::PathBuf::from(".")
    } else {
        std::path::PathBuf::from(bundle)
    };
    let path = dir.join("config.json");
    if path.exists() {
        bail!("File config.json exists. Remove it first");
    }
    let v = generate(rootless)?;
    std::fs::write(&path, serde_json::to_string_pretty(&v)? + "\n")
        .map_err(|e| anyhow!("write {}: {e}", path.display()))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_spec_parses_as_oci() {
        for rootless in [false, true] {
            let v = super::generate(rootless).unwrap();
            let spec: oci_spec::runtime::Spec = serde_json::from_value(v).unwrap();
            let linux = spec.linux().as_ref().unwrap();
            assert_eq!(linux.uid_mappings().is_some(), rootless);
        }
    }
}
