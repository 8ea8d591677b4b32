//! `cargo zeroimage`'s job: build the crate with cargo for each target, choose the executable (or take
//! every binary built, one image each), settle every option per image (flags over the package's
//! Cargo.toml settings over the workspace's), package, push, load.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cargo_metadata::{Metadata, Package};

use super::build::{BuildRequest, Executable, Unit, build};
use super::c_code::{GraphRequest, Prefetched, crates_with_c, resolve_graph};
use super::config::CargoConfig;
use super::options::CargoOptions;
use super::plan;
use super::select::{choose, default_tag, describe_selection, every_platform, targets, wants_all};
use super::settings::Settings;
use super::supply::{self, TargetBuild};
use super::target::{self, Target};
use super::toolchain::{TargetFacts, Toolchain, ZigChoice, plan as plan_toolchains};
use super::workspace::{Workspace, annotations, bin_of, bins, vcs_state};
use crate::assemble::options::ImageOptions;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::image::reference::Reference;
use crate::job::base::BaseImage;
use crate::job::lambda::LambdaCheck;
use crate::job::naming::{Repository, resolve_path};
use crate::job::package::{Input, PackageOptions, default_output};
use crate::job::plan::{Fallbacks, ImagePlan, Settled};
use crate::job::publish::{Load, OciLayout, Push};
use crate::job::{JobOptions, JobOutcome, ensure_stdout_free};
use crate::oci::platform::PlatformOverride;
use crate::report::Listener;
use crate::sbom::Vcs;
use crate::util::destination::{is_dash, parent_dir};
use crate::util::sanitize;
use crate::util::timestamp::Timestamp;

/// Everything `cargo zeroimage` decides: how to build, and the image options, which win over the
/// crate's `[package.metadata.zeroimage]` and `[workspace.metadata.zeroimage]` settings.
#[derive(Clone, Debug, Default)]
pub struct CargoJob {
    /// What cargo builds.
    pub cargo: CargoOptions,
    /// The image, its base, the archive, the push and the load (the same for every image; `{bin}`
    /// in the tag, the push references and the output is each image's binary).
    pub options: JobOptions,
    /// Also push every image to `REPOSITORY/<bin>:<version>` (with `options.push`, it replaces the
    /// `push` settings).
    pub repository: Option<Repository>,
    /// A deploy run (what `resolve` does): images go to `repository`, else each package's
    /// `repository` setting, and the `push` and `load` settings do not apply.
    pub deploy: bool,
}

/// One image the cargo job made.
#[derive(Clone, Debug)]
pub struct CargoImage {
    /// The archive (written unless the image only goes to an OCI layout), what was pushed, loaded
    /// and added to a layout.
    pub image: JobOutcome,
    /// The binary packaged.
    pub bin: String,
    /// The package it belongs to.
    pub package: String,
    /// That package's version.
    pub version: String,
    /// The targets built, one platform each.
    pub targets: Vec<Target>,
}

/// What the cargo job made: one image, or one per binary.
#[derive(Clone, Debug)]
pub struct CargoOutcome {
    /// One entry per image written, in build order.
    pub images: Vec<CargoImage>,
}

/// A binary to package: its package and one executable per target.
struct Planned<'w> {
    package: &'w Package,
    bin: String,
    builds: Vec<(Target, Executable)>,
    /// The crates each build compiled (for the SBOM), in the order of `builds`.
    units: Vec<Vec<Unit>>,
}

/// Everything decided for one image before anything is packaged.
struct Prepared<'w> {
    planned: Planned<'w>,
    tag: Reference,
    /// The archive: always written, but when the image goes to an OCI layout and no output is given.
    output: Option<PathBuf>,
    plan: ImagePlan,
}

impl CargoJob {
    /// Builds, packages, pushes and loads in the run `cx`: progress goes to its listener (cargo's own
    /// output to the terminal), its token stops cargo and everything else.
    pub fn run(&self, cx: &Context) -> Result<CargoOutcome> {
        let cancel = cx.cancel();
        let cargo = &self.cargo;
        let options = &self.options;
        let started = "now".parse::<Timestamp>().ok();
        let prefetched = Prefetched::start(
            likely_targets(cargo),
            cargo.manifest_path.as_deref(),
            cargo.resolution_flags(),
            cargo.feature_flags(),
            cancel,
        );
        let workspace = Workspace::load(
            cargo.manifest_path.as_deref(),
            &cargo.resolution_flags(),
            cancel,
        )?;
        workspace.check_settings()?;
        // git takes a few milliseconds to tens of them in a large checkout: asked beside the builds.
        let vcs = {
            let root = workspace.root().to_owned();
            let cancel = cancel.clone();
            std::thread::spawn(move || vcs_state(&root, &cancel))
        };
        let selected = workspace.selected_package(&cargo.packages, cargo.manifest_path.as_deref());
        let settings = workspace.settings(selected)?;
        if !cargo.several() {
            ensure_stdout_free(
                options.output.as_deref().or(settings.output.as_deref()),
                options.stdout_reserved,
            )?;
        }
        // A layout that cannot be written is refused before the build (each package's own setting
        // is checked again once its image is planned).
        if !self.deploy
            && let Some(dir) = options.oci_layout.as_ref().or(settings.oci_layout.as_ref())
        {
            crate::layout::store::check(dir)?;
        }
        let load_targets = if options.load.is_empty() && !self.deploy {
            settings.load_targets()?
        } else {
            options.load.targets.clone()
        };
        crate::load::preflight(&load_targets, cancel)?;
        // A key that cannot be read (or whose password is wrong) is refused before the build.
        options.signing.signer(
            &settings.sign_key.iter().cloned().collect::<Vec<_>>(),
            settings.signature_format()?,
        )?;
        settings.pull_options(&options.pull_options)?;

        // rustc's answers about the host and installed targets are kept in the target dir: asking costs
        // tens of milliseconds a run.
        let rustc = RefCell::new(target::Rustc::new(
            Some(&workspace.target_dir().join("zeroimage")),
            cancel,
        ));
        let host = rustc.borrow_mut().host_triple()?;
        let cwd = std::env::current_dir().map_err(Error::io("reading", "the current directory"))?;
        // Cargo reads its configuration from the current directory, whatever --manifest-path says.
        let cargo_config = CargoConfig::load(&cwd, &cargo.config, &host)?;
        let build = Build {
            cargo,
            host: &host,
            rustc: &rustc,
            config: &cargo_config,
            zig: ZigChoice::from_flag(cargo.zig.or(settings.zig)),
            graph: GraphRequest {
                manifest_path: cargo.manifest_path.as_deref(),
                resolution_flags: &cargo.resolution_flags(),
                feature_flags: cargo.feature_flags(),
                packages: &cargo.packages,
                selected: selected.map(|p| &p.id),
                cancel,
            },
            prefetched,
            graphs: RefCell::default(),
            auditable: supply::use_auditable(
                cargo.auditable.or(settings.auditable).unwrap_or(false),
                cx,
            ),
        };
        let planned = if cargo.several() {
            self.plan_several(&workspace, selected, &build, cx)?
        } else {
            vec![self.plan_one(&workspace, selected, &settings, &build, cx)?]
        };
        // For the SBOM's toolchain; an SBOM without it is still worth writing.
        let rustc_version = rustc.borrow_mut().verbose_version().ok();
        let vcs = vcs.join().ok().flatten();
        let graphs = build.graphs.take();
        rustc.borrow_mut().save();
        let mut prepared = Vec::new();
        for planned in planned {
            let facts = BuildFacts {
                started,
                auditable: build.auditable,
                rustc_version: rustc_version.as_deref(),
                vcs: vcs.as_ref(),
                graphs: &graphs,
            };
            prepared.push(self.prepare(&workspace, planned, facts, cx)?);
        }
        check_distinct(&prepared)?;
        let mut images = Vec::new();
        for prepared in prepared {
            images.push(self.make(prepared, cx)?);
        }
        Ok(CargoOutcome { images })
    }

    /// `triples` as chosen, or, for `all`, the musl target of every Linux platform the image's base
    /// offers whose standard library is installed, each platform left out said with why. `all`
    /// without a base, or with no platform left, is refused before anything is built.
    fn expand_all(
        &self,
        triples: Vec<String>,
        origin: &str,
        settings: &Settings,
        build: &Build,
        cx: &Context,
    ) -> Result<Vec<String>> {
        if !wants_all(&triples, origin)? {
            return Ok(triples);
        }
        let base = match &self.options.base {
            Some(base) => base.clone(),
            None => settings.base_ref()?.ok_or_else(|| {
                Error::Invalid(format!(
                    "target `all` (in {origin}) builds every platform of the base image, and there \
                     is no base; give one with --from or --from-archive (or `from` in Cargo.toml), \
                     or name the targets"
                ))
            })?,
        };
        let image = BaseImage::open(
            &base,
            &settings.pull_options(&self.options.pull_options)?,
            cx,
        )?;
        let platforms = image.platforms()?;
        let (chosen, skipped) = every_platform(&platforms, |triple| {
            build.rustc.borrow_mut().ensure_installed(triple).is_ok()
        });
        let name = sanitize::outside(image.name(), sanitize::EXCERPT);
        for (platform, why) in &skipped {
            cx.listener()
                .status("Skipping", &format!("{platform} of base {name}: {why}"));
        }
        if chosen.is_empty() {
            let offered: Vec<String> = platforms.iter().map(ToString::to_string).collect();
            return Err(Error::Invalid(format!(
                "target `all` (in {origin}): base {name} offers no platform there is an installed \
                 musl target for (it offers {})",
                offered.join(", ")
            )));
        }
        Ok(chosen)
    }

    /// One image: the binary the selection and the package's `default-run` choose, for each target.
    fn plan_one<'w>(
        &self,
        workspace: &'w Workspace,
        selected: Option<&'w Package>,
        settings: &Settings,
        build: &Build,
        cx: &Context,
    ) -> Result<Planned<'w>> {
        let (cargo, listener) = (&self.cargo, cx.listener());
        let (triples, origin) = targets(
            &cargo.targets,
            settings,
            build.config.build_targets()?,
            build.host,
        )?;
        let triples = self.expand_all(triples, &origin, settings, build, cx)?;
        listener.detail(&format!("target {} from {origin}", triples.join(", ")));
        let targets = build.targets_of(&triples)?;
        let toolchains = build.toolchains(&targets)?;
        let bin = cargo.bins.first().map(String::as_str);
        let mut builds: Vec<(Target, Executable)> = Vec::new();
        let mut units: Vec<Vec<Unit>> = Vec::new();
        for (target, toolchain) in targets.into_iter().zip(&toolchains) {
            let what = describe_selection(bin, selected);
            let built = build.run(toolchain, &target, None, &what, listener)?;
            let executable = choose(&built.executables, workspace, bin)?.clone();
            units.push(built.units);
            if let Some((_, first)) = builds.first()
                && (first.name != executable.name || first.package_id != executable.package_id)
            {
                return Err(Error::Invalid(format!(
                    "the targets chose different binaries (`{}` and `{}`); pick one with --bin",
                    first.name, executable.name
                )));
            }
            builds.push((target, executable));
        }
        let first = &builds[0].1;
        let package = workspace.package(&first.package_id).ok_or_else(|| {
            Error::Invalid(format!(
                "cargo built `{}` for a package not in this workspace",
                first.name
            ))
        })?;
        Ok(Planned {
            package,
            bin: first.name.clone(),
            builds,
            units,
        })
    }

    /// One image per binary built: one `cargo build` per target for the packages that want it.
    fn plan_several<'w>(
        &self,
        workspace: &'w Workspace,
        selected: Option<&'w Package>,
        build: &Build,
        cx: &Context,
    ) -> Result<Vec<Planned<'w>>> {
        let (cargo, listener) = (&self.cargo, cx.listener());
        let packages = plan::packages(workspace, cargo, selected)?;
        check_only(cargo, &packages)?;
        let configured = build.config.build_targets()?;
        let (groups, wanted, uniform) = plan::groups(
            workspace,
            cargo,
            &packages,
            configured,
            build.host,
            &|triples, origin, settings| self.expand_all(triples, origin, settings, build, cx),
        )?;
        let triples: Vec<String> = groups.iter().map(|g| g.triple.clone()).collect();
        let targets = build.targets_of(&triples)?;
        let toolchains = build.toolchains(&targets)?;
        let mut planned: Vec<Planned<'w>> = Vec::new();
        for ((group, target), toolchain) in groups.iter().zip(&targets).zip(&toolchains) {
            // Built package by package, a group holding none of the binaries asked for is skipped.
            let wanted_here = |p: &&Package| {
                cargo.bins.is_empty() || bins(p).iter().any(|b| cargo.bins.iter().any(|w| w == b))
            };
            if !uniform && !group.packages.iter().any(wanted_here) {
                continue;
            }
            let names: Vec<String> = group
                .packages
                .iter()
                .map(|p| format!("`{}`", p.name))
                .collect();
            let what = format!(
                "{} {}",
                if names.len() == 1 {
                    "package"
                } else {
                    "packages"
                },
                names.join(", ")
            );
            let scope = (!uniform).then_some(group.packages.as_slice());
            let built = build.run(toolchain, target, scope, &what, listener)?;
            for executable in built.executables {
                let Some(package) = group
                    .packages
                    .iter()
                    .find(|p| p.id == executable.package_id)
                else {
                    continue;
                };
                let asked = (cargo.only.is_empty()
                    || cargo
                        .only
                        .iter()
                        .any(|(p, b)| p == package.name.as_str() && b == &executable.name))
                    && (cargo.bins.is_empty() || cargo.bins.contains(&executable.name));
                if !asked {
                    continue;
                }
                let entry = (target.clone(), executable.clone());
                match planned
                    .iter_mut()
                    .find(|p| p.package.id == package.id && p.bin == executable.name)
                {
                    Some(existing) => {
                        existing.builds.push(entry);
                        existing.units.push(built.units.clone());
                    }
                    None => planned.push(Planned {
                        package,
                        bin: executable.name.clone(),
                        builds: vec![entry],
                        units: vec![built.units.clone()],
                    }),
                }
            }
        }
        for image in &planned {
            let index = packages.iter().position(|p| p.id == image.package.id);
            let expected = index.map(|i| &wanted[i]);
            let built: Vec<String> = image
                .builds
                .iter()
                .map(|(t, _)| t.triple().to_owned())
                .collect();
            if expected.is_some_and(|e| *e != built) {
                return Err(Error::Invalid(format!(
                    "cargo built `{}` for {} only, not for every target of package `{}`",
                    image.bin,
                    built.join(", "),
                    image.package.name
                )));
            }
        }
        if planned.is_empty() {
            return Err(Error::Invalid(
                "cargo built no executable: the selected packages have no binary target".to_owned(),
            ));
        }
        // Cargo reports artifacts as they finish; images go in a stable order.
        planned.sort_by(|a, b| (&a.package.name, &a.bin).cmp(&(&b.package.name, &b.bin)));
        Ok(planned)
    }

    /// What the package's settings say, under the flags: a deploy run, or one pushing to a
    /// repository, pushes where it is told only, and a deploy run loads nothing.
    fn fallbacks(&self, settings: &Settings, repository: Option<&Repository>) -> Result<Fallbacks> {
        Ok(Fallbacks {
            output: settings.output.clone(),
            // Like loading, not part of a deploy run.
            oci_layout: if self.deploy {
                None
            } else {
                settings.oci_layout.clone()
            },
            tag: settings.tag_pattern()?,
            created: settings
                .created
                .as_deref()
                .map(str::parse::<Timestamp>)
                .transpose()?,
            created_now: settings.created.as_deref() == Some("now"),
            allow_dynamic: settings.allow_dynamic.unwrap_or(false),
            config: settings.image_options()?,
            essentials: settings.essentials()?,
            base: settings.base_ref()?,
            // A deploy run, or one pushing to a repository, pushes where it is told only.
            push: if repository.is_none() && !self.deploy {
                settings.push_patterns()?
            } else {
                Vec::new()
            },
            load: if self.deploy {
                Vec::new()
            } else {
                settings.load_targets()?
            },
            sbom: settings.sbom_formats()?,
            provenance: settings.provenance,
            require_attachments: settings.require_attachments,
            compression: settings.compression()?,
            lambda: settings.lambda.unwrap_or(false),
            sign_keys: settings.sign_key.iter().cloned().collect(),
            cloud_credentials: settings.cloud_credentials,
            signature_format: settings.signature_format()?,
        })
    }

    /// Settles the image's name, archive, pushes and loads from the flags and its package's settings.
    fn prepare<'w>(
        &self,
        workspace: &Workspace,
        planned: Planned<'w>,
        facts: BuildFacts,
        cx: &Context,
    ) -> Result<Prepared<'w>> {
        let BuildFacts {
            started,
            auditable,
            rustc_version,
            vcs,
            graphs,
        } = facts;
        let options = &self.options;
        let package = planned.package;
        let settings = workspace.settings(Some(package))?;
        let bin = planned.bin.as_str();
        let version = package.version.to_string();
        let repository = match &self.repository {
            Some(repository) => Some(repository.clone()),
            None if self.deploy => settings.repository()?,
            None => None,
        };
        let fallbacks = self.fallbacks(&settings, repository.as_ref())?;
        let settled = options.settle(fallbacks, bin)?;
        let output = self.output(&settled, &planned, workspace)?;
        let tag = match settled.tag {
            Some(tag) => tag,
            None => default_tag(bin, &version)?,
        };
        ensure_stdout_free(output.as_deref(), options.stdout_reserved)?;
        if let Some(dir) = &settled.oci_layout {
            crate::layout::store::ref_name(&tag)?;
            crate::layout::store::check(dir)?;
            if let Some(output) = &output {
                crate::layout::store::ensure_apart(output, dir)?;
            }
        }
        let mut push_to = settled.push;
        if let Some(repository) = &repository {
            push_to.push(repository.for_image(bin, &version)?);
        }
        // A label naming a commit is only true of a clean checkout.
        let revision = vcs.filter(|v| !v.dirty).map(|v| v.commit.as_str());
        let from_package = annotations(package, bin, revision, settled.created);
        let config = ImageOptions {
            labels: from_package.clone(),
            annotations: from_package,
            ..ImageOptions::default()
        }
        .overlay(settled.config);
        let target_builds: Vec<TargetBuild> = planned
            .builds
            .iter()
            .zip(&planned.units)
            .map(|((target, executable), units)| TargetBuild {
                triple: target.triple(),
                executable,
                units,
                graph: graphs.get(target.triple()),
            })
            .collect();
        let attach = supply::attach_options(
            &self.cargo,
            &self.options,
            workspace,
            settled.sbom,
            settled.provenance,
            &target_builds,
            rustc_version,
            vcs,
            &tag,
            started.filter(|_| settled.created_now),
            auditable,
            cx,
        )?;
        let plan = ImagePlan {
            inputs: inputs_of(&planned),
            package: PackageOptions {
                output: output.clone(),
                tag: Some(tag.clone()),
                created: settled.created,
                allow_dynamic: settled.allow_dynamic,
                config,
                essentials: settled.essentials,
                compression: settled.compression,
                lambda: LambdaCheck::choose(settled.lambda, push_to.iter().map(Reference::domain)),
                attach,
                sign: settled.push_options.signer.clone(),
            },
            base: settled.base,
            pull: settings.pull_options(&options.pull_options)?,
            push: Push {
                references: push_to,
                options: settled.push_options,
            },
            load: Load {
                options: settled.load,
            },
            layout: settled.oci_layout.map(|path| OciLayout { path }),
        };
        Ok(Prepared {
            planned,
            tag,
            output,
            plan,
        })
    }

    /// Where the image's archive goes: `-o` or the `output` setting (`{bin}` resolved), else nowhere
    /// when it goes to an OCI layout, else beside the binary (several targets: in the target dir).
    fn output(
        &self,
        settled: &Settled,
        planned: &Planned,
        workspace: &Workspace,
    ) -> Result<Option<PathBuf>> {
        let executable = &planned.builds[0].1;
        Ok(match &settled.output {
            Some(output) => Some(resolve_path(output, &planned.bin)),
            // An image added to a layout needs no archive beside it.
            None if settled.oci_layout.is_some() => None,
            None if planned.builds.len() == 1 => Some(default_output(&executable.path)),
            None => Some(multi_platform_output(&self.cargo, workspace, executable)?),
        })
    }

    /// Packages one image, then pushes and loads it.
    fn make(&self, prepared: Prepared, cx: &Context) -> Result<CargoImage> {
        let Prepared {
            planned,
            output,
            plan,
            ..
        } = prepared;
        if let Some(output) = &output {
            create_output_dir(output)?;
        }
        Ok(CargoImage {
            image: plan.execute(cx)?,
            bin: planned.bin,
            package: planned.package.name.to_string(),
            version: planned.package.version.to_string(),
            targets: planned.builds.into_iter().map(|(t, _)| t).collect(),
        })
    }
}

/// Two images may not share an archive, a name or a push reference.
fn check_distinct(prepared: &[Prepared]) -> Result<()> {
    for (i, a) in prepared.iter().enumerate() {
        for b in &prepared[..i] {
            let which = format!("images `{}` and `{}`", b.planned.bin, a.planned.bin);
            if let (Some(output), true) = (&a.output, a.output == b.output) {
                return Err(Error::Invalid(format!(
                    "{which} would both be written to {}; put {{bin}} in -o or `output` (e.g. \
                     dist/{{bin}}.tar), or leave the default (beside each binary)",
                    output.display()
                )));
            }
            if a.tag == b.tag {
                return Err(Error::Invalid(format!(
                    "{which} would both be named {}; put {{bin}} in --tag or `tag`, or leave the \
                     default (<bin>:<version>)",
                    a.tag.familiar()
                )));
            }
            if let Some(same) = a
                .plan
                .push
                .references
                .iter()
                .find(|r| b.plan.push.references.contains(r))
            {
                return Err(Error::Invalid(format!(
                    "{which} would both be pushed to {}; put {{bin}} in the reference (e.g. \
                     registry.example.com/team/{{bin}}:1.0), or use --repository REGISTRY/PATH",
                    same.familiar()
                )));
            }
        }
    }
    Ok(())
}

/// The musl targets a run will most likely build, before the workspace and cargo's configuration are
/// read: those on the command line (which win), else the default for this program's architecture.
/// A wrong guess costs one `cargo metadata` on an idle core.
/// Each binary `resolve` names (`cargo.only`) exists in its package, when that package is selected.
fn check_only(cargo: &CargoOptions, packages: &[&Package]) -> Result<()> {
    for (package, bin) in &cargo.only {
        if let Some(found) = packages.iter().find(|p| p.name.as_str() == package) {
            bin_of(found, Some(bin))?;
        }
    }
    Ok(())
}

fn likely_targets(cargo: &CargoOptions) -> Vec<String> {
    let targets = if cargo.targets.is_empty() {
        vec![target::default_target(std::env::consts::ARCH)]
    } else {
        cargo.targets.clone()
    };
    targets.into_iter().filter(|t| target::is_musl(t)).collect()
}

/// What every image of a run shares about its build.
#[derive(Clone, Copy)]
struct BuildFacts<'a> {
    started: Option<Timestamp>,
    auditable: bool,
    /// What `rustc -vV` printed, when it could be asked.
    rustc_version: Option<&'a str>,
    /// The workspace's git commit and whether the checkout has changes.
    vcs: Option<&'a Vcs>,
    /// The dependency graphs already resolved, by target.
    graphs: &'a BTreeMap<String, Metadata>,
}

/// What every target's build shares.
struct Build<'a> {
    cargo: &'a CargoOptions,
    host: &'a str,
    rustc: &'a RefCell<target::Rustc>,
    config: &'a CargoConfig,
    zig: ZigChoice,
    /// What `cargo metadata` is asked, to find crates with C code before building.
    graph: GraphRequest<'a>,
    /// Graphs being resolved since the start of the run.
    prefetched: Prefetched,
    /// The graphs resolved for the toolchain choice, by target, kept for the SBOM.
    graphs: RefCell<BTreeMap<String, Metadata>>,
    /// Build through `cargo auditable`.
    auditable: bool,
}

impl Build<'_> {
    /// The targets `triples` name, each of whose standard library must be installed.
    fn targets_of(&self, triples: &[String]) -> Result<Vec<Target>> {
        let targets = triples
            .iter()
            .map(|triple| Target::new(triple, self.graph.cancel))
            .collect::<Result<Vec<_>>>()?;
        for target in &targets {
            self.rustc.borrow_mut().ensure_installed(target.triple())?;
        }
        Ok(targets)
    }

    /// The toolchain of each target, all decided before the first build, so that a missing C
    /// toolchain is reported before a long build.
    fn toolchains(&self, targets: &[Target]) -> Result<Vec<(TargetFacts, Toolchain)>> {
        let c_crates = |triple: &str| {
            if let Some(known) = self.graphs.borrow().get(triple) {
                return Some(crates_with_c(known, &self.graph));
            }
            let graph = match self.prefetched.take(triple) {
                Some(graph) => graph,
                None => resolve_graph(&self.graph, triple),
            }?;
            let crates = crates_with_c(&graph.metadata, &self.graph);
            if graph.exact {
                self.graphs
                    .borrow_mut()
                    .insert(triple.to_owned(), graph.metadata);
            }
            Some(crates)
        };
        plan_toolchains(
            targets,
            self.host,
            self.config,
            self.zig,
            &c_crates,
            self.graph.cancel,
        )
    }

    /// Runs `cargo build` for one target with its toolchain (`group`: exactly those packages) and
    /// returns every executable it reports.
    fn run(
        &self,
        (facts, toolchain): &(TargetFacts, Toolchain),
        target: &Target,
        group: Option<&[&Package]>,
        what: &str,
        listener: &dyn Listener,
    ) -> Result<super::build::Built> {
        let cargo = self.cargo;
        let triple = &facts.triple;
        listener.detail(&toolchain.describe(facts));
        if let Some(notice) = toolchain.notice(facts) {
            listener.warning(&notice);
        }
        let request = BuildRequest {
            target: triple.clone(),
            args: cargo.cargo_build_args(group),
            env: toolchain.env(triple),
            zigbuild: toolchain.zigbuild().map(Path::to_owned),
            c_crates: (facts.c_crates.iter().flatten())
                .map(|c| (c.id.clone(), c.name.clone()))
                .collect(),
            c_hint: toolchain.c_failure_hint(facts),
            auditable: self.auditable,
        };
        listener.status(
            "Building",
            &format!("{what} for {triple} ({})", target.platform()),
        );
        build(&request, self.graph.cancel)
    }
}

/// The programs an image is made of: one executable per target, labelled with its platform.
fn inputs_of(planned: &Planned) -> Vec<Input> {
    planned
        .builds
        .iter()
        .map(|(target, e)| Input {
            path: e.path.clone(),
            platform: PlatformOverride::from_platform(target.platform()),
        })
        .collect()
}

/// `<target-dir>/zeroimage/<profile>/<bin>.tar` for an image of several targets; the profile directory is
/// the one cargo built into.
fn multi_platform_output(
    cargo: &CargoOptions,
    workspace: &Workspace,
    executable: &Executable,
) -> Result<PathBuf> {
    let target_dir = cargo
        .target_dir
        .clone()
        .unwrap_or_else(|| workspace.target_dir());
    let profile = executable
        .path
        .parent()
        .and_then(|p| p.file_name())
        .ok_or_else(|| Error::input(&executable.path, "is not inside a profile directory"))?;
    let dir = target_dir.join("zeroimage").join(profile);
    std::fs::create_dir_all(&dir).map_err(Error::io("creating", &dir))?;
    Ok(dir.join(format!("{}.tar", executable.name)))
}

/// Creates the archive's directory when missing, as cargo does for its own outputs (a CI's
/// `CARGO_TARGET_DIR` leaves no `target/` beside the crate for `-o target/app.tar`).
fn create_output_dir(output: &Path) -> Result<()> {
    if is_dash(output) || std::fs::symlink_metadata(output).is_ok() {
        return Ok(());
    }
    let dir = parent_dir(output);
    std::fs::create_dir_all(&dir).map_err(Error::io("creating the output directory", &dir))
}
