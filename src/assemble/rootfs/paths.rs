//! Entry paths as a layer writes them, in bytes: their components, `..` applied lexically, and how a
//! message shows them.

use std::collections::VecDeque;

use crate::util::sanitize;

/// The prefix of a whiteout's name.
pub(super) const WHITEOUT: &[u8] = b".wh.";

/// A path split into its parent's components and its name.
pub(super) type Split = (Vec<Vec<u8>>, Vec<u8>);

/// An entry path's parent components and name, `..` applied lexically: `Some(None)` for the root,
/// `None` when it climbs above the root.
pub(super) fn normalize(path: &[u8]) -> Option<Option<Split>> {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for component in components(path) {
        match component {
            b"." => {}
            b".." => {
                parts.pop()?;
            }
            name => parts.push(name.to_vec()),
        }
    }
    Some(parts.pop().map(|name| (parts, name)))
}

/// The non-empty components of a path.
pub(super) fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/').filter(|c| !c.is_empty())
}

/// The components of a path, in the order a walk takes them.
pub(super) fn split(path: &[u8]) -> VecDeque<Vec<u8>> {
    components(path).map(<[u8]>::to_vec).collect()
}

/// A path from a layer, fit for a message.
pub(super) fn shown(path: &[u8]) -> String {
    sanitize::outside(&String::from_utf8_lossy(path), 200)
}
