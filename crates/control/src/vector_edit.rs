//! Edits of the host state's persistent vectors (`imbl::Vector`, see `host_cache.rs`) near
//! their end. `Vector::insert` and `Vector::remove` anywhere but at either end split the tree
//! and merge it back with rebalancing: 57 k instructions in a list of 1,000 items, 194 k in
//! one of 50,000 (callgrind). The lists are in launch order, and the instance an edit is
//! about is usually among the last launched (a termination lands a launch or two behind the
//! newest), so the items after it are popped and pushed back instead, a few hundred
//! instructions each.

use imbl::Vector;

/// How many items after the position an edit moves by hand before it leaves the edit to
/// imbl's split and merge.
const NEAR_END: usize = 32;

/// Removes and returns the item at `at` (which must be in the list).
pub(crate) fn remove_at<T: Clone>(list: &mut Vector<T>, at: usize) -> T {
    let after = list.len() - at - 1;
    if after > NEAR_END {
        return list.remove(at);
    }
    let tail: Vec<T> = (0..after).filter_map(|_| list.pop_back()).collect();
    let item = list.pop_back().expect("the position is in the list");
    list.extend(tail.into_iter().rev());
    item
}

/// Inserts `item` at `at` (at most the list's length).
pub(crate) fn insert_at<T: Clone>(list: &mut Vector<T>, at: usize, item: T) {
    let after = list.len() - at;
    if after > NEAR_END {
        list.insert(at, item);
    } else {
        let tail: Vec<T> = (0..after).filter_map(|_| list.pop_back()).collect();
        list.push_back(item);
        list.extend(tail.into_iter().rev());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every position near either end of lists short and long (inline, one chunk, a tree),
    /// and some between: the same list as `Vec`'s insert and remove give, and the list edited
    /// is a copy (the state last applied keeps its own).
    #[test]
    fn edits_near_the_end_and_far_from_it_give_what_vec_gives() {
        for n in [1usize, 5, 64, 200, 5_000] {
            let base: Vector<usize> = (0..n).collect();
            for at in (0..=n).filter(|at| *at < 40 || n - at < 40 || at % 97 == 0) {
                let mut list = base.clone();
                let mut want: Vec<usize> = (0..n).collect();
                insert_at(&mut list, at, 999_999);
                want.insert(at, 999_999);
                assert_eq!(list.iter().copied().collect::<Vec<_>>(), want, "insert at {at} of {n}");
                if at < n {
                    let mut list = base.clone();
                    let mut want: Vec<usize> = (0..n).collect();
                    assert_eq!(remove_at(&mut list, at), want.remove(at));
                    assert_eq!(list.iter().copied().collect::<Vec<_>>(), want, "remove at {at} of {n}");
                }
            }
            assert_eq!(base.len(), n, "the original is untouched");
        }
    }
}
