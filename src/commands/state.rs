use super::Global;
use crate::container::state::Container;
use anyhow::Result;

pub fn run(g: &Global, id: &str) -> Result<i32> {
    let c = Container::load(&g.root, id, false)?;
    let v = c.oci_state(c.status(), String::new());
    // runc prints the indented document without a trailing newline.
    super::out(&serde_json::to_string_pretty(&v)?)?;
    Ok(0)
}
