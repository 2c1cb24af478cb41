//! `pause ID` / `resume ID`: the v1 freezer (hybrid hosts too, as runc) or cgroup.freeze.

use super::Global;
use crate::container::state::{Container, Status};
use anyhow::{bail, Result};

pub fn pause(g: &Global, id: &str) -> Result<i32> {
    let c = Container::load(&g.root, id, true)?;
    match c.status() {
        Status::Running | Status::Created => c.state.cgroup.set_frozen(true)?,
        Status::Paused => bail!("container {id} is already paused"),
        _ => bail!("container not running"),
    }
    Ok(0)
}

pub fn resume(g: &Global, id: &str) -> Result<i32> {
    let c = Container::load(&g.root, id, true)?;
    if c.status() != Status::Paused {
        bail!("container not paused");
    }
    c.state.cgroup.set_frozen(false)?;
    Ok(0)
}
