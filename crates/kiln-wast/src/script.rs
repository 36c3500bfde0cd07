//! One script run's state (store, linker, named instances) and the execution of each
//! directive: module round trips, invocations, and the assertions' pass rules.

use std::collections::HashMap;

use kiln::{Engine, Error, Instance, Linker, Module, Store, Val};
use wast::token::Id;
use wast::{QuoteWat, WastDirective, WastExecute, WastInvoke, WastRet, Wat};

use crate::outcome::Failure;
use crate::runner::directive_name;
use crate::spectest::define_spectest;
use crate::values::{arg_to_val, matches, placeholder, render_list, render_ret, render_val};

/// The state of one script run: its store, linker and the instances it made.
pub(crate) struct Script {
    engine: Engine,
    store: Store<()>,
    linker: Linker<()>,
    current: Option<Instance>,
    current_failed: bool,
    instances: HashMap<String, Instance>,
    definitions: HashMap<String, Module>,
    last_definition: Option<Module>,
    unlinkable_accepts_trap: bool,
}

type Step = Result<(), Failure>;

impl Script {
    pub(crate) fn new(engine: &Engine, unlinkable_accepts_trap: bool) -> kiln::Result<Script> {
        let engine = engine.clone();
        let mut store = Store::new(&engine, ());
        let mut linker = Linker::new(&engine);
        linker.allow_shadowing(true);
        define_spectest(&mut linker, &mut store)?;
        Ok(Script {
            engine,
            store,
            linker,
            current: None,
            current_failed: false,
            instances: HashMap::new(),
            definitions: HashMap::new(),
            last_definition: None,
            unlinkable_accepts_trap,
        })
    }

    /// Executes one directive; `name` is its keyword (after the `assert_uninstantiable`
    /// rewrite).
    pub(crate) fn run(&mut self, directive: WastDirective<'_>, name: &'static str) -> Step {
        match directive {
            WastDirective::Module(mut quote) => {
                let id = quote.name();
                // Until this module exists, nothing may run against the previous one.
                self.current = None;
                self.current_failed = true;
                if let Some(id) = id {
                    self.instances.remove(id.name());
                }
                let module = self.compile(&mut quote)?;
                let instance = self
                    .instantiate(&module)
                    .map_err(|e| Failure::Instantiate(e.to_string()))?;
                self.current = Some(instance);
                self.current_failed = false;
                if let Some(id) = id {
                    self.instances.insert(id.name().to_owned(), instance);
                }
                Ok(())
            }
            WastDirective::ModuleDefinition(mut quote) => {
                let id = quote.name();
                let module = self.compile(&mut quote)?;
                if let Some(id) = id {
                    self.definitions
                        .insert(id.name().to_owned(), module.clone());
                }
                self.last_definition = Some(module);
                Ok(())
            }
            WastDirective::ModuleInstance {
                instance, module, ..
            } => {
                let definition = match module {
                    Some(id) => self.definitions.get(id.name()).cloned(),
                    None => self.last_definition.clone(),
                }
                .ok_or_else(|| Failure::Missing("no such module definition".to_owned()))?;
                let made = self
                    .instantiate(&definition)
                    .map_err(|e| Failure::Instantiate(e.to_string()))?;
                self.current = Some(made);
                if let Some(id) = instance {
                    self.instances.insert(id.name().to_owned(), made);
                }
                Ok(())
            }
            WastDirective::Register { name, module, .. } => {
                let instance = self.instance(module)?;
                self.linker
                    .instance(&mut self.store, name, instance)
                    .map_err(|e| Failure::Instantiate(format!("cannot register `{name}`: {e}")))?;
                Ok(())
            }
            WastDirective::Invoke(invoke) => match self.invoke(&invoke)? {
                Ok(_) => Ok(()),
                Err(e) => Err(Failure::Invoke(e.to_string())),
            },
            WastDirective::AssertReturn { exec, results, .. } => self.assert_return(exec, &results),
            WastDirective::AssertTrap { exec, message, .. } => {
                let outcome = match exec {
                    WastExecute::Invoke(invoke) => self.invoke(&invoke)?.map(|_| ()),
                    WastExecute::Wat(wat) => self.instantiate_wat(wat)?.map(|_| ()),
                    WastExecute::Get { .. } => {
                        return Err(Failure::Unsupported("assert_trap on `get`".to_owned()));
                    }
                };
                if name == "assert_uninstantiable" {
                    return match outcome {
                        Err(e) if e.as_trap().is_some() => Ok(()),
                        Err(e) => Err(no_trap(message, &format!("error: {e}"))),
                        Ok(()) => Err(no_trap(message, "successful instantiation")),
                    };
                }
                expect_trap(message, outcome)
            }
            WastDirective::AssertExhaustion { call, message, .. } => {
                let outcome = self.invoke(&call)?.map(|_| ());
                expect_trap(message, outcome)
            }
            WastDirective::AssertInvalid {
                mut module,
                message,
                ..
            } => self.expect_rejected(&mut module, message),
            WastDirective::AssertMalformed {
                mut module,
                message,
                ..
            } => self.expect_rejected(&mut module, message),
            WastDirective::AssertUnlinkable {
                module, message, ..
            } => match self.instantiate_wat(module)? {
                Ok(_) => Err(Failure::Accepted {
                    expected: message.to_owned(),
                }),
                Err(e) if e.as_trap().is_some() && !self.unlinkable_accepts_trap => {
                    Err(Failure::NoTrap {
                        expected: message.to_owned(),
                        got: format!("a trap instead of a link error: {e}"),
                    })
                }
                Err(_) => Ok(()),
            },
            other => Err(Failure::Unsupported(format!(
                "directive `{}`",
                directive_name(&other)
            ))),
        }
    }

    /// Encodes and compiles a module, then sends it through the artifact round trip.
    fn compile(&mut self, quote: &mut QuoteWat<'_>) -> Result<Module, Failure> {
        let bytes = quote.encode().map_err(|e| Failure::Parse(e.message()))?;
        self.compile_bytes(&bytes)
    }

    fn compile_bytes(&mut self, bytes: &[u8]) -> Result<Module, Failure> {
        let module =
            Module::new(&self.engine, bytes).map_err(|e| Failure::Compile(e.to_string()))?;
        let artifact = module
            .serialize()
            .map_err(|e| Failure::RoundTrip(format!("serialize: {e}")))?;
        // SAFETY: `Module::serialize` of this engine's module wrote these bytes just above.
        unsafe { Module::deserialize(&self.engine, &artifact) }
            .map_err(|e| Failure::RoundTrip(format!("deserialize: {e}")))
    }

    fn instantiate(&mut self, module: &Module) -> kiln::Result<Instance> {
        self.linker.instantiate(&mut self.store, module)
    }

    /// Compiles an inline module (it must compile) and instantiates it.
    fn instantiate_wat(&mut self, mut wat: Wat<'_>) -> Result<kiln::Result<Instance>, Failure> {
        let bytes = wat.encode().map_err(|e| Failure::Parse(e.message()))?;
        let module = self.compile_bytes(&bytes)?;
        Ok(self.instantiate(&module))
    }

    /// `assert_invalid` and `assert_malformed`: text that does not parse or bytes that do
    /// not compile pass; the message is not compared.
    fn expect_rejected(&mut self, quote: &mut QuoteWat<'_>, message: &str) -> Step {
        let Ok(bytes) = quote.encode() else {
            return Ok(());
        };
        match Module::new(&self.engine, &bytes) {
            Err(_) => Ok(()),
            Ok(_) => Err(Failure::Accepted {
                expected: message.to_owned(),
            }),
        }
    }

    fn instance(&self, id: Option<Id<'_>>) -> Result<Instance, Failure> {
        match id {
            Some(id) => self
                .instances
                .get(id.name())
                .copied()
                .ok_or_else(|| Failure::Missing(format!("no module named `${}`", id.name()))),
            None => self.current.ok_or_else(|| {
                Failure::Missing(if self.current_failed {
                    "the current module failed to compile or instantiate".to_owned()
                } else {
                    "no module has been instantiated".to_owned()
                })
            }),
        }
    }

    /// Calls an export. The outer `Err` is a problem of the script (missing export,
    /// unsupported argument); the inner result is the call's.
    fn invoke(&mut self, invoke: &WastInvoke<'_>) -> Result<kiln::Result<Vec<Val>>, Failure> {
        let instance = self.instance(invoke.module)?;
        let func = instance
            .get_func(&mut self.store, invoke.name)
            .ok_or_else(|| Failure::Missing(format!("no exported function `{}`", invoke.name)))?;
        let args = invoke
            .args
            .iter()
            .map(|a| arg_to_val(a, &mut self.store))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Failure::Unsupported)?;
        let count = func.ty(&self.store).results.len();
        let mut results = vec![placeholder(); count];
        Ok(func
            .call(&mut self.store, &args, &mut results)
            .map(|()| results))
    }

    fn assert_return(&mut self, exec: WastExecute<'_>, expected: &[WastRet<'_>]) -> Step {
        let got = match exec {
            WastExecute::Invoke(invoke) => self
                .invoke(&invoke)?
                .map_err(|e| Failure::Invoke(e.to_string()))?,
            WastExecute::Get { module, global, .. } => {
                let instance = self.instance(module)?;
                let g = instance
                    .get_global(&mut self.store, global)
                    .ok_or_else(|| Failure::Missing(format!("no exported global `{global}`")))?;
                vec![g.get(&mut self.store)]
            }
            WastExecute::Wat(wat) => {
                self.instantiate_wat(wat)?
                    .map_err(|e| Failure::Instantiate(e.to_string()))?;
                Vec::new()
            }
        };
        let mut ok = got.len() == expected.len();
        for (ret, val) in expected.iter().zip(&got) {
            ok &= matches(ret, val, &self.store).map_err(Failure::Unsupported)?;
        }
        if ok {
            Ok(())
        } else {
            Err(Failure::Results {
                expected: render_list(expected.iter().map(render_ret)),
                got: render_list(got.iter().map(|v| render_val(v, &self.store))),
            })
        }
    }
}

fn no_trap(expected: &str, got: &str) -> Failure {
    Failure::NoTrap {
        expected: expected.to_owned(),
        got: got.to_owned(),
    }
}

/// Passes if `outcome` is a trap whose message contains the spec's `expected` message (or
/// is a prefix of it: the spec sometimes adds detail such as an element index).
fn expect_trap<T>(expected: &str, outcome: Result<T, Error>) -> Step {
    match outcome {
        Ok(_) => Err(no_trap(expected, "a normal return")),
        Err(e) => match e.as_trap() {
            Some(trap) => {
                let actual = trap.code().message();
                if actual.contains(expected) || expected.starts_with(actual) {
                    Ok(())
                } else {
                    Err(no_trap(expected, &format!("trap `{actual}`")))
                }
            }
            None => Err(no_trap(expected, &format!("error: {e}"))),
        },
    }
}
