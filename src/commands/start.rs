use super::Global;
use crate::container::state::Container;
use anyhow::Result;

pub fn run(g: &Global, id: &str) -> Result<i32> {
    let c = Container::load(&g.root, id, true)?;
    let listener = c.start()?;
    if let Err(e) = c.run_poststart() {
        super::delete::stop(&c);
        return Err(e);
    }
    if let Some(l) = listener {
        // runc's start returns once the container is ready (sd_notify), or gone.
        l.forward_ready(c.state.pid, || c.init_alive())?;
    }
    Ok(0)
}
