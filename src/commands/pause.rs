//! `pause ID` / `resume ID`: the v1 freezer (hybrid hosts too, as runc) or cgroup.freeze.

use super::Global;
use crate::container::state::{Container, Op};
use anyhow::Result;

pub fn pause(g: &Global, id: &str) -> Result<i32> {
    freeze(g, id, Op::Pause)
}

pub fn resume(g: &Global, id: &str) -> Result<i32> {
    freeze(g, id, Op::Resume)
}

fn freeze(g: &Global, id: &str, op: Op) -> Result<i32> {
    let c = Container::load(&g.root, id, true)?;
    c.status().require(op, id)?;
    c.state.cgroup.freeze(op == Op::Pause)?;
    Ok(0)
}
