//! Where a built image goes besides its archive, behind one trait (ko's publishers): an OCI layout
//! directory, a registry push, a load into local runtimes. Each sink is a small adapter over its transport, which takes the
//! image as a [`Stored`]; a new destination is one more implementation.

use crate::context::Context;
use crate::error::Result;
use crate::image::Stored;
use crate::image::reference::Reference;
use crate::layout::store::{self, LayoutSummary};
use crate::load::{self, LoadOptions, Loaded};
use crate::registry::push::{self, PushOptions, PushOutcome};

/// A destination for an image.
pub trait Publish {
    /// Delivers `image`, which is called `name`, in the run `cx`; says what became of it.
    fn publish(&self, image: &Stored, name: &Reference, cx: &Context) -> Result<Published>;
}

/// What a sink did.
#[derive(Clone, Debug)]
pub enum Published {
    /// Pushed to registries: each reference, and the documents that did not follow the image.
    Pushed(PushOutcome),
    /// Loaded into local runtimes.
    Loaded(Vec<Loaded>),
    /// Added to an OCI layout directory.
    Stored(LayoutSummary),
}

/// Adds the image to an OCI image layout directory (`--oci-layout DIR`).
#[derive(Clone, Debug)]
pub struct OciLayout {
    /// The layout directory (created when missing).
    pub path: std::path::PathBuf,
}

impl Publish for OciLayout {
    fn publish(&self, image: &Stored, name: &Reference, cx: &Context) -> Result<Published> {
        store::add(&self.path, image, name, cx).map(Published::Stored)
    }
}

/// Pushes the image to registries.
#[derive(Clone, Debug)]
pub struct Push {
    /// Every reference to push to.
    pub references: Vec<Reference>,
    /// How to reach the registries.
    pub options: PushOptions,
}

impl Publish for Push {
    fn publish(&self, image: &Stored, _: &Reference, cx: &Context) -> Result<Published> {
        push::push(image, &self.references, &self.options, cx).map(Published::Pushed)
    }
}

/// Loads the image into local container runtimes.
#[derive(Clone, Debug)]
pub struct Load {
    /// The runtimes and how.
    pub options: LoadOptions,
}

impl Publish for Load {
    fn publish(&self, image: &Stored, name: &Reference, cx: &Context) -> Result<Published> {
        load::load(image, name, &self.options, cx).map(Published::Loaded)
    }
}
