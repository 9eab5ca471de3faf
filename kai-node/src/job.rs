//! `Job`: the work of one Promise-returning call, run on the libuv thread pool so that the
//! event loop keeps running, and what each kind of result becomes in JS.
//!
//! NOTE: the pool has `UV_THREADPOOL_SIZE` threads (4 by default), which Node's file system
//! and DNS calls share. While four long calls run, those calls wait.

use kai_core::Embeddings;
use napi::bindgen_prelude::{
    AsyncTask, Float32Array, Function, JsObjectValue, Object, ToNapiValue, TypeName, Unknown,
};
use napi::{Env, Task};
use serde::Serialize;

use crate::errors::reject_with_code;

/// The closure of one call. [`Task::compute`] runs it under `Error::catch_panic`.
type Work<T> = Box<dyn FnOnce() -> kai_core::Result<T> + Send>;

/// The work of one call. Its Promise resolves to the JS form of the closure's result.
/// It rejects with an `Error` whose `code` is the kai error code, and a panic rejects
/// with `KAI_INTERNAL`.
pub struct Job<T: Outcome> {
    work: Option<Work<T>>,
}

impl<T: Outcome> std::fmt::Debug for Job<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").finish_non_exhaustive()
    }
}

impl<T: Outcome> Job<T> {
    /// Runs `work` on the thread pool with the arguments that `prepared` converted, or
    /// rejects with the conversion's error. Conversions run on the JS thread and fail
    /// through the same Promise, so a call with invalid arguments rejects instead of
    /// throwing.
    pub fn run<P: Send + 'static>(
        prepared: kai_core::Result<P>,
        work: impl FnOnce(P) -> kai_core::Result<T> + Send + 'static,
    ) -> AsyncTask<Self> {
        let work: Work<T> = match prepared {
            Ok(arguments) => Box::new(move || work(arguments)),
            Err(err) => Box::new(move || Err(err)),
        };
        AsyncTask::new(Self { work: Some(work) })
    }
}

impl<T: Outcome> Task for Job<T> {
    type Output = kai_core::Result<T>;
    type JsValue = T::Js;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let Some(work) = self.work.take() else {
            return Ok(Err(kai_core::Error::Internal(
                "a task ran twice".to_owned(),
            )));
        };
        Ok(kai_core::Error::catch_panic(work))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        match output {
            Ok(value) => value.into_js(&env),
            Err(err) => Err(reject_with_code(&env, &err)),
        }
    }
}

/// A result that a [`Job`] computes off the JS thread and converts on it.
pub trait Outcome: Send + 'static {
    /// The JS value it becomes.
    type Js: ToNapiValue + TypeName;

    /// Converts the result on the JS thread.
    fn into_js(self, env: &Env) -> napi::Result<Self::Js>;
}

/// A structured result as a JS object, in the shape of the REST API's JSON.
#[derive(Debug)]
pub struct Json(String);

impl Json {
    /// Serialises `value` to JSON text as kai-server does. Jobs call it on the thread pool,
    /// so the JS thread only parses the text.
    pub fn of<T: Serialize + ?Sized>(value: &T) -> kai_core::Result<Self> {
        serde_json::to_string(value).map(Self).map_err(|err| {
            kai_core::Error::Internal(format!("cannot encode a result as JSON: {err}"))
        })
    }
}

impl Outcome for Json {
    type Js = Unknown<'static>;

    /// Parses the text with the JS `JSON.parse`, as a REST client parses a response, so
    /// both return equal objects with the same field order. Each `f32` becomes the number
    /// of its shortest decimal form, not the `f64` widening of its bits.
    fn into_js(self, env: &Env) -> napi::Result<Self::Js> {
        let json: Object<'_> = env.get_global()?.get_named_property("JSON")?;
        let parse: Function<'_, String, Unknown<'static>> = json.get_named_property("parse")?;
        parse.call(self.0)
    }
}

/// Embeddings as one `Float32Array` per row.
#[derive(Debug)]
pub struct Vectors(pub Embeddings);

impl Outcome for Vectors {
    type Js = Vec<Float32Array>;

    fn into_js(self, _env: &Env) -> napi::Result<Self::Js> {
        Ok(self
            .0
            .iter()
            .map(|row| Float32Array::new(row.to_vec()))
            .collect())
    }
}

impl Outcome for bool {
    type Js = bool;

    fn into_js(self, _env: &Env) -> napi::Result<Self::Js> {
        Ok(self)
    }
}

impl Outcome for () {
    type Js = ();

    fn into_js(self, _env: &Env) -> napi::Result<Self::Js> {
        Ok(())
    }
}
