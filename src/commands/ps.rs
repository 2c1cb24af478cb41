//! `ps [-f table|json] ID [ps options]`: the container's pids, or the host's `ps` output
//! filtered to them (runc's behaviour: header line, then the rows whose PID column matches).

use super::Global;
use crate::container::state::Container;
use anyhow::{anyhow, bail, Context, Result};

/// The PID column of a `ps` header.
pub fn pid_index(header: &str) -> Result<usize> {
    header
        .split_whitespace()
        .position(|f| f == "PID")
        .ok_or_else(|| anyhow!("couldn't find PID field in ps output"))
}

/// Keep the header and the rows whose PID is one of `pids`.
pub fn filter(output: &str, pids: &[i32]) -> Result<String> {
    let mut lines = output.lines();
    let header = lines.next().unwrap_or_default();
    let idx = pid_index(header)?;
    let mut out = format!("{header}\n");
    for l in lines.filter(|l| !l.is_empty()) {
        let field = l.split_whitespace().nth(idx).unwrap_or_default();
        let p: i32 = field.parse().map_err(|_| anyhow!("unable to parse pid: {field:?}"))?;
        if pids.contains(&p) {
            out.push_str(l);
            out.push('\n');
        }
    }
    Ok(out)
}

pub fn run(g: &Global, id: &str, format: &str, ps_args: &[String]) -> Result<i32> {
    let c = Container::load(&g.root, id, false)?;
    let pids = c.state.cgroup.pids();
    match format {
        "json" => {
            super::out(&(serde_json::to_string(&pids)? + "\n"))?;
            return Ok(0);
        }
        "table" => {}
        f => bail!("invalid format option {f:?} (table or json)"),
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        bail!("ps {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    super::out(&filter(&String::from_utf8_lossy(&out.stdout), &pids)?)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_rows_by_pid_column() {
        let ps = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 init\nroot 42 1 0 10:00 ? 00:00:00 sleep 9\n";
        assert_eq!(
            filter(ps, &[42]).unwrap(),
            "UID PID PPID C STIME TTY TIME CMD\nroot 42 1 0 10:00 ? 00:00:00 sleep 9\n"
        );
        assert!(filter("USER CMD\nx y\n", &[1]).is_err());
    }
}
