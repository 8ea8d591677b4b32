//! Which packages a `cargo zeroimage` run of several images covers (`--workspace`, several `-p`,
//! `--bins`, several `--bin`, or the binaries `resolve` names), and how they are built: one `cargo
//! build` per target triple, for the packages whose settings (or `--target`) ask for it.

use cargo_metadata::Package;

use super::options::CargoOptions;
use super::select::targets;
use super::settings::Settings;
use super::workspace::Workspace;
use crate::error::{Error, Result};

/// Makes `all` (in the targets chosen from the origin given, for a package of these settings) into
/// the targets it stands for.
pub(crate) type ExpandTargets<'a> =
    dyn Fn(Vec<String>, &str, &Settings) -> Result<Vec<String>> + 'a;

/// One `cargo build`: a target and the packages built for it.
pub(crate) struct Group<'w> {
    pub triple: String,
    pub packages: Vec<&'w Package>,
}

/// The member packages selected: `--workspace` (without `--exclude`d ones), the `-p` names (globs
/// with `*` and `?` allowed), the packages `resolve` names, else the package `selected` (the current
/// directory's) or, at a virtual workspace root, cargo's default members.
pub(crate) fn packages<'w>(
    workspace: &'w Workspace,
    cargo: &CargoOptions,
    selected: Option<&'w Package>,
) -> Result<Vec<&'w Package>> {
    let members = workspace.metadata.workspace_packages();
    let names = |specs: &[String], flag: &str| -> Result<Vec<&'w Package>> {
        let mut chosen: Vec<&'w Package> = Vec::new();
        for spec in specs {
            let name = spec.split('@').next().unwrap_or(spec);
            let matching: Vec<&'w Package> = members
                .iter()
                .copied()
                .filter(|p| glob(name, p.name.as_str()))
                .collect();
            if matching.is_empty() {
                let all: Vec<&str> = members.iter().map(|p| p.name.as_str()).collect();
                return Err(Error::Invalid(format!(
                    "{flag} `{}` names no package of the workspace (its members: {})",
                    crate::util::sanitize::outside(spec, 100),
                    all.join(", ")
                )));
            }
            for package in matching {
                if !chosen.iter().any(|p| p.id == package.id) {
                    chosen.push(package);
                }
            }
        }
        Ok(chosen)
    };
    if !cargo.only.is_empty() {
        let specs: Vec<String> = cargo.only.iter().map(|(p, _)| p.clone()).collect();
        return names(&specs, "package");
    }
    if cargo.workspace {
        let excluded = names(&cargo.exclude, "--exclude")?;
        return Ok(members
            .into_iter()
            .filter(|p| !excluded.iter().any(|e| e.id == p.id))
            .collect());
    }
    if !cargo.packages.is_empty() {
        return names(&cargo.packages, "-p");
    }
    if let Some(package) = selected {
        return Ok(vec![package]);
    }
    let defaults = &workspace.metadata.workspace_default_members;
    if defaults.is_available() {
        Ok(members
            .into_iter()
            .filter(|p| defaults.contains(&p.id))
            .collect())
    } else {
        Ok(members)
    }
}

/// `*` and `?` wildcards, as cargo takes in `-p`.
fn glob(pattern: &str, name: &str) -> bool {
    fn matches(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => matches(&p[1..], n) || (!n.is_empty() && matches(p, &n[1..])),
            (Some('?'), Some(_)) => matches(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => matches(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    matches(&p, &n)
}

/// Each package's targets (`--target`, else its settings, else cargo's `build.target`, else the host's
/// musl target; `all` made into its base's platforms by `expand`), grouped by
/// triple in order of first appearance. `uniform` is true when every package wants the same ones, so
/// one build per target can keep the user's own selection flags.
pub(crate) fn groups<'w>(
    workspace: &Workspace,
    cargo: &CargoOptions,
    packages: &[&'w Package],
    configured: Option<(Vec<String>, String)>,
    host: &str,
    expand: &ExpandTargets,
) -> Result<(Vec<Group<'w>>, Vec<Vec<String>>, bool)> {
    let mut wanted = Vec::new();
    for package in packages {
        let settings = workspace.settings(Some(package))?;
        let (triples, origin) = targets(&cargo.targets, &settings, configured.clone(), host)?;
        wanted.push(expand(triples, &origin, &settings)?);
    }
    let uniform = wanted.windows(2).all(|pair| pair[0] == pair[1]);
    let mut groups: Vec<Group<'w>> = Vec::new();
    for (package, triples) in packages.iter().zip(&wanted) {
        for triple in triples {
            match groups.iter_mut().find(|g| &g.triple == triple) {
                Some(group) => group.packages.push(package),
                None => groups.push(Group {
                    triple: triple.clone(),
                    packages: vec![package],
                }),
            }
        }
    }
    Ok((groups, wanted, uniform))
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs_match_like_cargos_package_patterns() {
        assert!(glob("server", "server"));
        assert!(glob("ser*", "server"));
        assert!(glob("*", "tools"));
        assert!(glob("t?ols", "tools"));
        assert!(!glob("ser", "server"));
        assert!(!glob("x*", "server"));
    }
}
