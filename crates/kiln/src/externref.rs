//! `externref` values: host objects that wasm can hold, pass around and store in tables
//! and globals, but never look into.

use std::any::Any;

use crate::store::store_id;
use crate::{AsContextMut, Error, Result, StoreContext};

/// A reference to a host object, the non-null value of an `externref`.
///
/// The object belongs to the store it was created in and lives as long as that store:
/// dropping the store drops every object, wherever wasm left references to it. A store
/// does not collect objects while it lives, so a long-lived store that creates many
/// short-lived references keeps them all (like every other item of a store).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExternRef {
    store: u64,
    raw: u64,
}

impl ExternRef {
    /// Moves `value` into `store` and returns a reference to it.
    pub fn new<T: Any + Send + Sync>(mut store: impl AsContextMut, value: T) -> ExternRef {
        let ctx = store.as_context_mut();
        let raw = ctx.0.opaque_mut().new_extern_object(Box::new(value));
        ExternRef {
            store: store_id(ctx.0),
            raw,
        }
    }

    /// The host object. Downcast it with [`<dyn Any>::downcast_ref`].
    pub fn data<'a, T: 'a>(
        &self,
        store: impl Into<StoreContext<'a, T>>,
    ) -> Result<&'a (dyn Any + Send + Sync)> {
        let ctx = store.into();
        if self.store != store_id(ctx.0) {
            return Err(Error::Type("externref used with another store".into()));
        }
        ctx.0
            .opaque()
            .extern_object(self.raw)
            .ok_or_else(|| Error::Type("externref names no object of this store".into()))
    }

    pub(crate) fn raw(&self, store: u64) -> Result<u64> {
        if self.store != store {
            return Err(Error::Type("externref used with another store".into()));
        }
        Ok(self.raw)
    }

    pub(crate) fn from_raw(store: u64, raw: u64) -> Option<ExternRef> {
        (raw != 0).then_some(ExternRef { store, raw })
    }
}
