//! The tree view of `vigil top`: processes indented under their parents (as PM's process
//! tree has them), like `ps -ef --forest` or htop's F5.
//!
//! [`forest`] orders any list of (pid, parent) pairs as a forest, whatever the parents say:
//! a parent that is not in the list (the kernel started the process, or the parent is
//! filtered out) makes a root, a process naming itself is a root, and a cycle (a bogus
//! tree) is broken at its first member in list order, so every process appears exactly
//! once and the walk always ends.

use std::collections::HashMap;

/// Display order and depth of `nodes` (each a pid and its parent's pid, if known), as
/// (index into `nodes`, depth). Siblings keep their order in `nodes` (the table's sort).
pub fn forest(nodes: &[(u32, Option<u32>)]) -> Vec<(usize, usize)> {
    let index_of: HashMap<u32, usize> = nodes
        .iter()
        .enumerate()
        .map(|(index, (pid, _))| (*pid, index))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut roots = Vec::new();
    for (index, (pid, parent)) in nodes.iter().enumerate() {
        match parent
            .filter(|parent| parent != pid)
            .and_then(|parent| index_of.get(&parent))
        {
            Some(&parent) => children[parent].push(index),
            None => roots.push(index),
        }
    }
    let mut visited = vec![false; nodes.len()];
    let mut order = Vec::with_capacity(nodes.len());
    // Roots first; what is left hangs off a cycle: start each at its first member in list
    // order.
    let starts = roots.into_iter().chain(0..nodes.len());
    for start in starts {
        if visited[start] {
            continue;
        }
        let mut stack = vec![(start, 0)];
        while let Some((index, depth)) = stack.pop() {
            if std::mem::replace(&mut visited[index], true) {
                continue;
            }
            order.push((index, depth));
            for &child in children[index].iter().rev() {
                if !visited[child] {
                    stack.push((child, depth + 1));
                }
            }
        }
    }
    order
}

/// The name cell of a process at `depth` in the tree view: two spaces a level and a branch.
pub fn indent(name: &str, depth: usize) -> String {
    if depth == 0 {
        return name.to_string();
    }
    format!("{}└─ {name}", "  ".repeat(depth - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(nodes: &[(u32, Option<u32>)]) -> Vec<(u32, usize)> {
        forest(nodes)
            .into_iter()
            .map(|(index, depth)| (nodes[index].0, depth))
            .collect()
    }

    #[test]
    fn children_follow_their_parents_in_sort_order() {
        // vm and pm from the boot table (no parent), a parent with two children and a
        // grandchild, listed in some sort order.
        let nodes = [
            (6, Some(3)),
            (1, None),
            (3, None),
            (5, Some(3)),
            (7, Some(5)),
            (2, None),
        ];
        assert_eq!(
            shown(&nodes),
            [(1, 0), (3, 0), (6, 1), (5, 1), (7, 2), (2, 0)]
        );
    }

    #[test]
    fn orphans_reparented_to_pm_hang_under_pm() {
        // pid 4's parent exited: PM's tree now names PM (2) as its parent.
        let nodes = [(1, None), (2, None), (4, Some(2)), (9, Some(4))];
        assert_eq!(shown(&nodes), [(1, 0), (2, 0), (4, 1), (9, 2)]);
        // A parent not shown (gone, or filtered out) makes a root.
        let nodes = [(4, Some(3)), (9, Some(4))];
        assert_eq!(shown(&nodes), [(4, 0), (9, 1)]);
    }

    #[test]
    fn bogus_parents_never_loop_or_lose_a_process() {
        // Itself as parent, a two-cycle, a three-cycle hanging a child, duplicates of a pid.
        let nodes = [
            (1, Some(1)),
            (2, Some(3)),
            (3, Some(2)),
            (4, Some(6)),
            (5, Some(4)),
            (6, Some(5)),
            (7, Some(6)),
        ];
        let order = shown(&nodes);
        let mut pids: Vec<u32> = order.iter().map(|(pid, _)| *pid).collect();
        pids.sort_unstable();
        assert_eq!(pids, [1, 2, 3, 4, 5, 6, 7], "each exactly once: {order:?}");
        assert_eq!(order[0], (1, 0));
        assert_eq!(&order[1..3], [(2, 0), (3, 1)]);
        assert_eq!(order[3], (4, 0), "the cycle starts at its first member");
        assert!(order.iter().all(|(_, depth)| *depth < nodes.len()));
        assert!(forest(&[]).is_empty());
    }

    #[test]
    fn names_are_indented_by_depth() {
        assert_eq!(indent("pm", 0), "pm");
        assert_eq!(indent("pm_child", 1), "└─ pm_child");
        assert_eq!(indent("leaf", 3), "    └─ leaf");
    }
}
