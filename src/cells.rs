//! Cells: the cast split across several troupe processes. Which cell an agent belongs to (its
//! `cell = K`, or a stable hash of its name), and which cell this process is (`--cell`,
//! `TROUPE_CELL`, Kubernetes' pod index, or the StatefulSet ordinal in the hostname). Pure.

use std::fmt;

/// The most cells `[cells] count` may ask for.
pub const MAX_CELLS: u32 = 1024;

/// The cell of an agent whose `cell` is unset: FNV-1a (64 bits) of its name's UTF-8 bytes, as
/// written in `agents.toml`, modulo `count`.
///
/// It depends on nothing but the name and the count, so adding or removing other agents never
/// moves an agent; changing `count` moves about `1 - 1/count` of them (pin those that must stay
/// with `cell = K`). FNV is written out here rather than taken from `std`'s hasher, whose output
/// Rust does not promise to keep across releases.
pub fn cell_of(name: &str, count: u32) -> u32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = name.bytes().fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    (hash % u64::from(count.max(1))) as u32
}

/// Where this process learnt its cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `[cells] count` is 1 (or absent): the only cell, 0.
    Single,
    /// `--cell K`.
    Flag,
    /// The `TROUPE_CELL` environment variable.
    Env,
    /// `TROUPE_POD_INDEX`, which the StatefulSet fills from the pod's
    /// `apps.kubernetes.io/pod-index` label through the downward API.
    PodIndex,
    /// The StatefulSet ordinal at the end of the hostname (`troupe-2`), inside Kubernetes only.
    Hostname,
}

impl Origin {
    /// How operators read it (`check-config`, logs).
    pub fn label(self) -> &'static str {
        match self {
            Origin::Single => "single cell",
            Origin::Flag => "--cell",
            Origin::Env => "TROUPE_CELL",
            Origin::PodIndex => "TROUPE_POD_INDEX (pod-index label)",
            Origin::Hostname => "hostname ordinal",
        }
    }
}

/// This process's cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    /// Its index, `0..count`.
    pub index: u32,
    /// `[cells] count`.
    pub count: u32,
    /// Where the index came from.
    pub origin: Origin,
}

/// What the process can see of its cell, gathered by the caller (flags, environment).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    /// `--cell`.
    pub flag: Option<u32>,
    /// `TROUPE_CELL`.
    pub env: Option<String>,
    /// `TROUPE_POD_INDEX`.
    pub pod_index: Option<String>,
    /// `HOSTNAME`, or the kernel's host name.
    pub hostname: Option<String>,
    /// `KUBERNETES_SERVICE_HOST` is set: the hostname is a pod's name.
    pub in_kubernetes: bool,
}

impl Hints {
    /// The hints of this process: its environment, and `--cell`.
    pub fn from_env(flag: Option<u32>) -> Self {
        let var = |name: &str| std::env::var(name).ok();
        Self {
            flag,
            env: var("TROUPE_CELL"),
            pod_index: var("TROUPE_POD_INDEX"),
            hostname: var("HOSTNAME").or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_string())
            }),
            in_kubernetes: var("KUBERNETES_SERVICE_HOST").is_some_and(|v| !v.is_empty()),
        }
    }
}

/// Why the cell could not be decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellError(String);

impl fmt::Display for CellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CellError {}

/// Decides this process's cell: `--cell`, else `TROUPE_CELL`, else `TROUPE_POD_INDEX`, else,
/// inside Kubernetes, the hostname's ordinal. An empty variable counts as unset (a missing label
/// reaches the environment empty). With one cell, nothing needs to be set; whatever is set must
/// still be in range. A value that is set but wrong is an error, never skipped for the next one.
pub fn identify(count: u32, hints: &Hints) -> Result<Cell, CellError> {
    let count = count.max(1);
    let set = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let (raw, origin) = if let Some(k) = hints.flag {
        (k.to_string(), Origin::Flag)
    } else if let Some(v) = set(&hints.env) {
        (v, Origin::Env)
    } else if let Some(v) = set(&hints.pod_index) {
        (v, Origin::PodIndex)
    } else if let Some(k) = hints
        .hostname
        .as_deref()
        .filter(|_| hints.in_kubernetes && count > 1)
        .and_then(hostname_ordinal)
    {
        (k.to_string(), Origin::Hostname)
    } else if count == 1 {
        return Ok(Cell {
            index: 0,
            count,
            origin: Origin::Single,
        });
    } else {
        return Err(CellError(format!(
            "[cells] count is {count} but this process's cell is not set; pass --cell K or set TROUPE_CELL \
             (0 to {}), or run it in the StatefulSet of deploy/k8s",
            count - 1
        )));
    };
    let index: u32 = raw.parse().map_err(|_| {
        CellError(format!(
            "{}: `{raw}` is not a cell number; use 0 to {}",
            origin.label(),
            count - 1
        ))
    })?;
    if index >= count {
        return Err(CellError(format!(
            "{}: cell {index} is out of range: [cells] count is {count}; use 0 to {} (or raise [cells] count)",
            origin.label(),
            count - 1
        )));
    }
    Ok(Cell { index, count, origin })
}

/// The StatefulSet ordinal ending a pod's hostname: `troupe-2` → 2. `None` without a `-N` tail.
pub fn hostname_ordinal(hostname: &str) -> Option<u32> {
    let (_, tail) = hostname.trim().rsplit_once('-')?;
    if tail.is_empty() || !tail.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    tail.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hints() -> Hints {
        Hints::default()
    }

    #[test]
    fn the_name_hash_is_fixed_forever() {
        // FNV-1a 64 of "" is the offset basis; of "a" a published test vector.
        assert_eq!(
            cell_of("", u32::MAX),
            (0xcbf2_9ce4_8422_2325u64 % u64::from(u32::MAX)) as u32
        );
        assert_eq!(
            cell_of("a", u32::MAX),
            (0xaf63_dc4c_8601_ec8cu64 % u64::from(u32::MAX)) as u32
        );
        // What the README and docs/scaling.md promise for the shipped names.
        assert_eq!([cell_of("Ada", 2), cell_of("Basil", 2)], [1, 0]);
        assert_eq!([cell_of("Ada", 3), cell_of("Basil", 3)], [1, 1]);
        assert_eq!(cell_of("anything", 1), 0);
        assert_eq!(cell_of("anything", 0), 0, "a count of 0 is treated as 1");
    }

    #[test]
    fn the_hash_spreads_names_over_the_cells() {
        let mut per_cell = [0u32; 3];
        for i in 0..300 {
            per_cell[cell_of(&format!("agent{i}"), 3) as usize] += 1;
        }
        assert!(per_cell.iter().all(|&n| n > 70), "{per_cell:?}");
    }

    #[test]
    fn one_cell_needs_nothing_set() {
        let c = identify(1, &hints()).unwrap();
        assert_eq!((c.index, c.origin), (0, Origin::Single));
        // A hostname ordinal means nothing with one cell.
        let h = Hints {
            hostname: Some("troupe-4".into()),
            in_kubernetes: true,
            ..hints()
        };
        assert_eq!(identify(1, &h).unwrap().origin, Origin::Single);
        // But a cell given explicitly must exist.
        let h = Hints {
            flag: Some(1),
            ..hints()
        };
        assert!(identify(1, &h).unwrap_err().to_string().contains("out of range"));
    }

    #[test]
    fn several_cells_need_the_cell() {
        let e = identify(3, &hints()).unwrap_err().to_string();
        assert!(
            e.contains("count is 3") && e.contains("--cell K") && e.contains("0 to 2"),
            "{e}"
        );
        // Outside Kubernetes a hostname ending in a number is not a cell.
        let h = Hints {
            hostname: Some("build-7".into()),
            ..hints()
        };
        assert!(identify(3, &h).is_err());
    }

    #[test]
    fn the_flag_wins_then_the_env_then_the_pod_index_then_the_hostname() {
        let all = Hints {
            flag: Some(0),
            env: Some("1".into()),
            pod_index: Some("2".into()),
            hostname: Some("troupe-3".into()),
            in_kubernetes: true,
        };
        let pick = |h: &Hints| {
            let c = identify(4, h).unwrap();
            (c.index, c.origin)
        };
        assert_eq!(pick(&all), (0, Origin::Flag));
        let h = Hints {
            flag: None,
            ..all.clone()
        };
        assert_eq!(pick(&h), (1, Origin::Env));
        let h = Hints {
            env: Some(" ".into()),
            ..h
        };
        assert_eq!(pick(&h), (2, Origin::PodIndex), "an empty variable is unset");
        let h = Hints {
            pod_index: Some(String::new()),
            ..h
        };
        assert_eq!(pick(&h), (3, Origin::Hostname));
    }

    #[test]
    fn a_wrong_value_is_an_error_naming_where_it_came_from() {
        let h = Hints {
            env: Some("two".into()),
            pod_index: Some("1".into()),
            ..hints()
        };
        let e = identify(3, &h).unwrap_err().to_string();
        assert_eq!(e, "TROUPE_CELL: `two` is not a cell number; use 0 to 2");
        let h = Hints {
            hostname: Some("troupe-3".into()),
            in_kubernetes: true,
            ..hints()
        };
        let e = identify(3, &h).unwrap_err().to_string();
        assert!(e.starts_with("hostname ordinal: cell 3 is out of range"), "{e}");
    }

    #[test]
    fn hostname_ordinals() {
        assert_eq!(hostname_ordinal("troupe-0"), Some(0));
        assert_eq!(hostname_ordinal("my-troupe-12"), Some(12));
        assert_eq!(hostname_ordinal("troupe"), None);
        assert_eq!(hostname_ordinal("troupe-"), None);
        assert_eq!(hostname_ordinal("troupe-7f9c"), None);
        assert_eq!(hostname_ordinal("troupe-+1"), None);
    }
}
