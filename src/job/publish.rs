//! Where a built image goes besides its archive, behind one trait (ko's publishers): a registry push,
//! a load into local runtimes. Each sink is a small adapter over its transport, which takes the
//! image as a [`Stored`]; a new destination is one more implementation.

use crate::error::Result;
use crate::image::Stored;
use crate::image::reference::Reference;
use crate::load::{self, LoadOptions, Loaded};
use crate::registry::push::{self, PushOptions, PushOutcome};
use crate::report::Listener;

/// A destination for an image.
pub trait Publish {
    /// Delivers `image`, which is called `name`; says what became of it.
    fn publish(
        &self,
        image: &Stored,
        name: &Reference,
        listener: &dyn Listener,
    ) -> Result<Published>;
}

/// What a sink did.
#[derive(Clone, Debug)]
pub enum Published {
    /// Pushed to registries: each reference, and the documents that did not follow the image.
    Pushed(PushOutcome),
    /// Loaded into local runtimes.
    Loaded(Vec<Loaded>),
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
    fn publish(&self, image: &Stored, _: &Reference, listener: &dyn Listener) -> Result<Published> {
        push::push(image, &self.references, &self.options, listener).map(Published::Pushed)
    }
}

/// Loads the image into local container runtimes.
#[derive(Clone, Debug)]
pub struct Load {
    /// The runtimes and how.
    pub options: LoadOptions,
}

impl Publish for Load {
    fn publish(
        &self,
        image: &Stored,
        name: &Reference,
        listener: &dyn Listener,
    ) -> Result<Published> {
        load::load(image, name, &self.options, listener).map(Published::Loaded)
    }
}
