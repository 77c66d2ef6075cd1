//! `[cells] count` and each agent's `cell` validated; [`Config::keep_cell`] narrows a loaded
//! configuration to the agents and the store of one cell.

use super::error::Report;
use super::operations;
use super::raw::{RawAgent, RawCells};
use super::{AgentConfig, Config, Mode};
use crate::cells::{cell_of, Cell, MAX_CELLS};

/// `[cells] count`, 1 when absent.
pub(crate) fn count(raw: &RawCells, err: &mut Report<'_>) -> u32 {
    operations::int("cells.count", &raw.count, 1, 1, i64::from(MAX_CELLS), err) as u32
}

/// Gives every agent its cell: its own `cell`, in range, or the hash of its name.
pub(crate) fn assign(raw: &[RawAgent], count: u32, agents: &mut [AgentConfig], err: &mut Report<'_>) {
    for (i, (r, a)) in raw.iter().zip(agents.iter_mut()).enumerate() {
        a.cell = match &r.cell {
            None => cell_of(&a.name, count),
            Some(k) if (0..i64::from(count)).contains(k.get_ref()) => *k.get_ref() as u32,
            Some(k) => {
                let fix = if count == 1 {
                    "with one cell every agent is in cell 0; remove `cell` or raise [cells] count".to_string()
                } else {
                    format!("use 0 to {}, or raise [cells] count", count - 1)
                };
                err(
                    Some(k.span()),
                    format!("agents[{i}].cell"),
                    format!(
                        "agent `{}`: cell {} is out of range: [cells] count is {count}; {fix}",
                        a.name,
                        k.get_ref()
                    ),
                );
                0
            }
        };
    }
}

impl Config {
    /// Narrows the configuration to one cell: only its agents run, and with several cells its
    /// store is `<store path>/cell-K`, so that no two cells ever open the same store.
    pub fn keep_cell(&mut self, cell: Cell) {
        if cell.count > 1 {
            self.store_path = self.store_path.join(format!("cell-{}", cell.index));
        }
        self.agents.retain(|a| a.cell == cell.index);
        self.cell = Some(cell);
    }

    /// Before running agents: with several cells in sandbox mode, the sandbox must be a shared
    /// one (`[sandbox] url` or `--sandbox-url`); each cell starting its own would give each a
    /// different Discord.
    pub fn check_shared_sandbox(&self) -> Result<(), String> {
        if self.cell_count > 1 && self.mode == Mode::Sandbox && self.sandbox.url.is_none() {
            return Err(format!(
                "[cells] count is {} in sandbox mode, so every cell must use one shared sandbox: start it \
                 with `troupe sandbox` and give its address with [sandbox] url or --sandbox-url",
                self.cell_count
            ));
        }
        Ok(())
    }

    /// The agents of each cell, by name, in file order.
    pub fn agents_by_cell(&self) -> Vec<Vec<&str>> {
        let mut cells = vec![Vec::new(); self.cell_count.max(1) as usize];
        for a in &self.agents {
            cells[a.cell as usize].push(a.name.as_str());
        }
        cells
    }
}

#[cfg(test)]
mod tests {
    use crate::cells::{Cell, Origin};
    use crate::config::Config;

    const CAST: &str = "[cells]\ncount = 3\n[sandbox]\nurl = \"http://127.0.0.1:1\"\n\
                        [backends.b]\nprovider = \"echo\"\n\
                        [[agents]]\nname = \"Ada\"\nbackend = \"b\"\n\
                        [[agents]]\nname = \"Basil\"\nbackend = \"b\"\ncell = 2\n";

    fn cell(index: u32, count: u32) -> Cell {
        Cell {
            index,
            count,
            origin: Origin::Flag,
        }
    }

    #[test]
    fn agents_get_their_cell_or_the_hash_of_their_name() {
        let c = Config::parse("agents.toml", CAST).unwrap();
        assert_eq!(c.cell_count, 3);
        assert_eq!(c.agents_by_cell(), vec![vec![], vec!["Ada"], vec!["Basil"]]);
        // Adding agents moves nobody.
        let more = format!("{CAST}[[agents]]\nname = \"Cyd\"\nbackend = \"b\"\n");
        let c = Config::parse("agents.toml", &more).unwrap();
        assert_eq!((c.agents[0].cell, c.agents[1].cell), (1, 2));
        // Without [cells], everyone is in cell 0.
        let one = CAST.replace("count = 3", "");
        let one = one.replace("cell = 2\n", "");
        let c = Config::parse("agents.toml", &one).unwrap();
        assert_eq!(c.cell_count, 1);
        assert!(c.agents.iter().all(|a| a.cell == 0));
    }

    #[test]
    fn out_of_range_cells_are_reported_at_their_line() {
        let e = Config::parse("agents.toml", &CAST.replace("cell = 2", "cell = 3"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "agents.toml:13: agents[1].cell: agent `Basil`: cell 3 is out of range: [cells] count is 3; \
             use 0 to 2, or raise [cells] count"
        );
        let e = Config::parse("agents.toml", &CAST.replace("count = 3", "count = 0"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("agents.toml:2: cells.count: 0 is out of range; use 1 to 1024"),
            "{e}"
        );
        let e = Config::parse("agents.toml", &CAST.replace("count = 3", "cuont = 3"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean `count`?"), "{e}");
    }

    #[test]
    fn a_cell_keeps_its_agents_and_its_own_store() {
        let mut c = Config::parse("agents.toml", CAST).unwrap();
        c.keep_cell(cell(2, 3));
        assert_eq!(c.agents.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["Basil"]);
        assert_eq!(c.store_path, std::path::Path::new("state/cell-2"));
        assert_eq!(c.cell, Some(cell(2, 3)));
        // One cell: everything, in the store as configured.
        let mut c = Config::parse(
            "agents.toml",
            &CAST.replace("count = 3", "count = 1").replace("cell = 2\n", ""),
        )
        .unwrap();
        c.keep_cell(cell(0, 1));
        assert_eq!((c.agents.len(), c.store_path.to_str()), (2, Some("state")));
    }

    #[test]
    fn several_cells_in_sandbox_mode_need_a_shared_sandbox() {
        let c = Config::parse("agents.toml", CAST).unwrap();
        assert_eq!(c.check_shared_sandbox(), Ok(()));
        let c = Config::parse("agents.toml", &CAST.replace("url = \"http://127.0.0.1:1\"", "")).unwrap();
        let e = c.check_shared_sandbox().unwrap_err();
        assert!(e.contains("--sandbox-url"), "{e}");
    }
}
