//! Rhai: one sandboxed engine per run, scripts compiled once, one `Scope` per virtual user.
//!
//! Script files (`scripts:` in a scenario) form a library: their functions are visible to every
//! snippet, and their top-level statements run once per virtual user to set up its state. Snippets
//! (`script` steps, `if`/`while` conditions, journey hooks) are compiled at load time, so a syntax
//! error is an input error with a position, never a run-time surprise. The engine has no file,
//! network or process access (Rhai has none unless registered), and limits on operations, call
//! depth and value sizes turn a runaway script into a [`ScriptError`] instead of a hang.

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::Rng;
use rhai::{AST, Array, Dynamic, Engine, EvalAltResult, ImmutableString, Position, Scope};
use sha2::{Digest, Sha256};

use crate::secret::Secrets;

/// Operations one snippet may run before it is stopped.
pub const MAX_OPERATIONS: u64 = 1_000_000;
/// Deepest function-call nesting.
pub const MAX_CALL_LEVELS: usize = 48;
/// Longest string a script may build, in bytes.
pub const MAX_STRING_SIZE: usize = 1 << 20;
/// Largest array or map a script may build.
pub const MAX_COLLECTION_SIZE: usize = 100_000;
/// Longest one snippet may run, by the wall clock: operations bound the work, this bounds the
/// time (a cheap operation count can still be seconds of string or array copying).
pub const MAX_SNIPPET_TIME: Duration = Duration::from_secs(5);
/// A snippet still running after this long on a runtime thread is stopped, its user's variables
/// are put back, and it runs again on the blocking pool, that time and every time after: the
/// runtime thread serves every other user's I/O, whose timings a long snippet would corrupt.
pub const INLINE_BUDGET: Duration = Duration::from_millis(2);
/// Runs a snippet must stay under [`INLINE_BUDGET`] before it is trusted to run inline without
/// a copy of the user's variables to fall back on.
const PROBATION: u32 = 16;
/// Operations between two looks at the clock.
const CLOCK_EVERY: u64 = 1024;

/// The termination tokens of the progress callback.
const OUTGREW_INLINE: &str = "stampede:outgrew-inline";
const OVER_TIME: &str = "stampede:over-time";

/// A script failure with the script's file and line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ScriptError {
    /// The script file, or the scenario file for inline snippets.
    pub file: String,
    /// Line in that file (1-based; 0 when Rhai gave no position).
    pub line: usize,
    /// What went wrong.
    pub message: String,
}

/// Where a snippet's text came from, so Rhai's positions map back to the user's file.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The file the snippet is in.
    pub file: PathBuf,
    /// The file line of the snippet's first line.
    pub first_line: usize,
    /// The file column of the snippet's first character (for one-line snippets).
    pub first_col: usize,
}

impl Origin {
    fn locate(&self, pos: Position) -> (usize, usize) {
        match (pos.line(), pos.position()) {
            (Some(1), Some(c)) => (self.first_line, self.first_col + c - 1),
            (Some(l), c) => (self.first_line + l - 1, c.unwrap_or(1)),
            _ => (self.first_line, self.first_col),
        }
    }

    fn error(&self, message: String, pos: Position) -> ScriptError {
        let (line, _) = self.locate(pos);
        ScriptError {
            file: self.file.display().to_string(),
            line,
            message,
        }
    }
}

/// A compiled snippet with the library's functions merged in.
#[derive(Debug, Clone)]
pub struct Snippet {
    ast: Arc<AST>,
    origin: Arc<Origin>,
    cost: Arc<Cost>,
}

/// What the run has learnt about a snippet's running time.
#[derive(Debug, Default)]
struct Cost {
    /// It once outgrew [`INLINE_BUDGET`]: it runs on the blocking pool.
    heavy: AtomicBool,
    /// Runs that stayed under the budget while on probation.
    light_runs: AtomicU32,
}

impl Snippet {
    fn new(ast: AST, origin: Origin) -> Snippet {
        Snippet {
            ast: Arc::new(ast),
            origin: Arc::new(origin),
            cost: Arc::default(),
        }
    }

    /// Whether this snippet must run off the runtime's threads (it once ran too long there).
    pub fn is_heavy(&self) -> bool {
        self.cost.heavy.load(Ordering::Relaxed)
    }
}

/// The run's Rhai engine plus the compiled script library.
pub struct Scripts {
    engine: Engine,
    library: AST,
    init: Vec<(AST, Arc<Origin>)>,
    secrets: Secrets,
}

thread_local! {
    /// The secret values `print` and `debug` must mask while a script runs on this thread.
    static PRINT_MASK: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    /// While a script runs on this thread: when it must yield the thread (inline probation) and
    /// when it must stop ([`MAX_SNIPPET_TIME`]). Read by the engine's progress callback.
    static DEADLINES: std::cell::Cell<(Option<Instant>, Option<Instant>)> =
        const { std::cell::Cell::new((None, None)) };
}

/// Runs `f` with the wall-clock deadlines set for this thread's progress callback.
fn timed<R>(inline: Option<Duration>, f: impl FnOnce() -> R) -> R {
    let now = Instant::now();
    DEADLINES.with(|d| d.set((inline.map(|b| now + b), Some(now + MAX_SNIPPET_TIME))));
    let out = f();
    DEADLINES.with(|d| d.set((None, None)));
    out
}

fn is_token(e: &EvalAltResult, token: &str) -> bool {
    matches!(e, EvalAltResult::ErrorTerminated(t, _) if t.clone().into_immutable_string().is_ok_and(|s| s == token))
}

fn masked(text: &str) -> String {
    PRINT_MASK
        .with(|m| crate::secret::mask(m.borrow().iter().map(String::as_str), text.to_string()))
}

impl fmt::Debug for Scripts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scripts")
            .field("files", &self.init.len())
            .finish()
    }
}

/// A compile error at a position in a file: `(line, col, message)`.
#[derive(Debug, Clone)]
pub struct CompileError {
    /// File line.
    pub line: usize,
    /// File column.
    pub col: usize,
    /// Rhai's message.
    pub message: String,
}

impl Scripts {
    /// A sandboxed engine with stampede's helpers and no library yet.
    pub fn new() -> Scripts {
        Scripts {
            engine: sandboxed_engine(),
            library: AST::empty(),
            init: Vec::new(),
            secrets: Secrets::default(),
        }
    }

    /// Sets what `print` and `debug` output must mask.
    pub fn set_secrets(&mut self, secrets: Secrets) {
        self.secrets = secrets;
    }

    /// Runs `f` with this user's secret values registered for masking printed output.
    fn masking<R>(
        &self,
        scope: &mut Scope<'static>,
        f: impl FnOnce(&mut Scope<'static>) -> R,
    ) -> R {
        if self.secrets.is_empty() {
            return f(scope);
        }
        let values: Vec<String> = self
            .secrets
            .literals
            .iter()
            .cloned()
            .chain(
                self.secrets
                    .vars
                    .iter()
                    .filter_map(|n| scope.get(n).map(|v| v.to_string())),
            )
            .collect();
        PRINT_MASK.with(|m| *m.borrow_mut() = values);
        let out = f(scope);
        PRINT_MASK.with(|m| m.borrow_mut().clear());
        out
    }

    /// Compiles a script file into the library.
    pub fn add_file(&mut self, path: &Path, text: &str) -> Result<(), CompileError> {
        let origin = Arc::new(Origin {
            file: path.to_path_buf(),
            first_line: 1,
            first_col: 1,
        });
        let ast = self.engine.compile(text).map_err(|e| {
            let (line, col) = origin.locate(e.1);
            CompileError {
                line,
                col,
                message: e.0.to_string(),
            }
        })?;
        self.library = self.library.merge(&ast.clone_functions_only());
        let mut statements = ast;
        statements.clear_functions();
        self.init.push((statements, origin));
        Ok(())
    }

    /// Compiles statements (a `script` step or hook).
    pub fn compile(&self, text: &str, origin: Origin) -> Result<Snippet, CompileError> {
        let ast = self.engine.compile(text).map_err(|e| {
            let (line, col) = origin.locate(e.1);
            CompileError {
                line,
                col,
                message: e.0.to_string(),
            }
        })?;
        Ok(Snippet::new(self.library.merge(&ast), origin))
    }

    /// Compiles a condition (`if`, `while`).
    pub fn compile_condition(&self, text: &str, origin: Origin) -> Result<Snippet, CompileError> {
        let ast = self.engine.compile_expression(text).map_err(|e| {
            let (line, col) = origin.locate(e.1);
            CompileError {
                line,
                col,
                message: e.0.to_string(),
            }
        })?;
        Ok(Snippet::new(self.library.merge(&ast), origin))
    }

    /// Runs the library files' top-level statements in a new virtual user's scope.
    pub fn init_vu(&self, scope: &mut Scope<'static>) -> Result<(), ScriptError> {
        for (ast, origin) in &self.init {
            let full = self.library.merge(ast);
            timed(None, || {
                self.masking(scope, |scope| self.engine.run_ast_with_scope(scope, &full))
            })
            .map_err(|e| to_error(&e, origin))?;
        }
        Ok(())
    }

    /// Runs a snippet's statements in a virtual user's scope, on this thread, for up to
    /// [`MAX_SNIPPET_TIME`]. Variables the snippet declares with `let` or `const` are its own
    /// and gone when it ends (the scope is rewound to its length before): a snippet run every
    /// iteration would otherwise add its `let`s to the user's scope each time, for the rest of
    /// the run. Assignments to existing variables stay.
    pub fn run(&self, snippet: &Snippet, scope: &mut Scope<'static>) -> Result<(), ScriptError> {
        self.exec(snippet, scope, None)
            .map_err(|e| to_error(&e, &snippet.origin))
    }

    /// Runs a snippet on a runtime thread unless it proves too long for one: `None` when it
    /// outgrew [`INLINE_BUDGET`] (the scope is as it was before, and the snippet is now heavy:
    /// run it with [`Scripts::run`] off the runtime). While on probation the user's variables
    /// are copied first, so a stopped run can be undone; after that it runs without the copy.
    pub fn try_inline(
        &self,
        snippet: &Snippet,
        scope: &mut Scope<'static>,
    ) -> Option<Result<(), ScriptError>> {
        if snippet.cost.light_runs.load(Ordering::Relaxed) >= PROBATION {
            return Some(self.run(snippet, scope));
        }
        let before = scope.clone();
        match self.exec(snippet, scope, Some(INLINE_BUDGET)) {
            Err(e) if is_token(&e, OUTGREW_INLINE) => {
                *scope = before;
                snippet.cost.heavy.store(true, Ordering::Relaxed);
                None
            }
            out => {
                snippet.cost.light_runs.fetch_add(1, Ordering::Relaxed);
                Some(out.map_err(|e| to_error(&e, &snippet.origin)))
            }
        }
    }

    fn exec(
        &self,
        snippet: &Snippet,
        scope: &mut Scope<'static>,
        inline: Option<Duration>,
    ) -> Result<(), Box<EvalAltResult>> {
        let len = scope.len();
        let out = timed(inline, || {
            self.masking(scope, |scope| {
                self.engine.run_ast_with_scope(scope, &snippet.ast)
            })
        });
        scope.rewind(len);
        out
    }

    /// Evaluates a condition; anything but a boolean is an error naming the value's type.
    pub fn test(&self, snippet: &Snippet, scope: &mut Scope<'static>) -> Result<bool, ScriptError> {
        let len = scope.len();
        let v = timed(None, || {
            self.masking(scope, |scope| {
                self.engine
                    .eval_ast_with_scope::<Dynamic>(scope, &snippet.ast)
            })
        });
        scope.rewind(len);
        let v = v.map_err(|e| to_error(&e, &snippet.origin))?;
        v.as_bool().map_err(|t| {
            snippet.origin.error(
                format!("condition gave a {t}, expected true or false"),
                Position::NONE,
            )
        })
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts::new()
    }
}

fn to_error(e: &EvalAltResult, origin: &Origin) -> ScriptError {
    let pos = e.position();
    if is_token(e, OVER_TIME) {
        return origin.error(
            format!(
                "the script ran longer than {MAX_SNIPPET_TIME:?} (its wall-time limit) and was stopped"
            ),
            pos,
        );
    }
    let mut message = e.to_string();
    // Rhai appends " (line N, position M)" relative to the snippet; we give file lines instead.
    if let Some(cut) = message.rfind(" (line ") {
        message.truncate(cut);
    }
    origin.error(message, pos)
}

/// Converts a JSON value into a Rhai value (numbers stay numbers, objects become maps).
pub fn from_json(v: &serde_json::Value) -> Dynamic {
    match v {
        serde_json::Value::Null => Dynamic::UNIT,
        serde_json::Value::Bool(b) => Dynamic::from_bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Dynamic::from(ImmutableString::from(s.as_str())),
        serde_json::Value::Array(a) => Dynamic::from_array(a.iter().map(from_json).collect()),
        serde_json::Value::Object(o) => {
            let mut m = rhai::Map::new();
            for (k, v) in o {
                m.insert(k.as_str().into(), from_json(v));
            }
            Dynamic::from_map(m)
        }
    }
}

/// Converts a Rhai value to JSON; values JSON cannot hold become strings.
pub fn to_json(v: &Dynamic) -> serde_json::Value {
    if v.is_unit() {
        serde_json::Value::Null
    } else if let Ok(b) = v.as_bool() {
        serde_json::Value::Bool(b)
    } else if let Ok(i) = v.as_int() {
        serde_json::Value::from(i)
    } else if let Ok(f) = v.as_float() {
        serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number)
    } else if let Some(s) = v.read_lock::<ImmutableString>() {
        serde_json::Value::String(s.to_string())
    } else if let Some(a) = v.read_lock::<Array>() {
        serde_json::Value::Array(a.iter().map(to_json).collect())
    } else if let Some(m) = v.read_lock::<rhai::Map>() {
        serde_json::Value::Object(m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect())
    } else {
        serde_json::Value::String(v.to_string())
    }
}

fn sandboxed_engine() -> Engine {
    let mut e = Engine::new();
    e.set_max_operations(MAX_OPERATIONS)
        .set_max_call_levels(MAX_CALL_LEVELS)
        .set_max_expr_depths(64, 32)
        .set_max_string_size(MAX_STRING_SIZE)
        .set_max_array_size(MAX_COLLECTION_SIZE)
        .set_max_map_size(MAX_COLLECTION_SIZE)
        .set_max_modules(0);
    // `eval` would compile text at run time, escaping the compile-once rule and its checks.
    e.disable_symbol("eval");
    e.on_progress(|ops| {
        if ops % CLOCK_EVERY != 0 {
            return None;
        }
        let (inline, hard) = DEADLINES.with(|d| d.get());
        let now = Instant::now();
        if inline.is_some_and(|t| now >= t) {
            Some(OUTGREW_INLINE.into())
        } else if hard.is_some_and(|t| now >= t) {
            Some(OVER_TIME.into())
        } else {
            None
        }
    });
    e.on_print(|s| eprintln!("[script] {}", masked(s)));
    e.on_debug(|s, src, pos| {
        eprintln!(
            "[script debug] {} {pos:?}: {}",
            src.unwrap_or(""),
            masked(s)
        )
    });
    register_helpers(&mut e);
    e
}

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

fn fail<T>(msg: String) -> RhaiResult<T> {
    Err(msg.into())
}

fn register_helpers(e: &mut Engine) {
    e.register_fn("rand_int", |lo: i64, hi: i64| -> RhaiResult<i64> {
        if hi < lo {
            return fail(format!(
                "rand_int({lo}, {hi}): the upper bound is below the lower"
            ));
        }
        Ok(rand::rng().random_range(lo..=hi))
    });
    e.register_fn("rand_float", || rand::rng().random::<f64>());
    e.register_fn("rand_float", |lo: f64, hi: f64| -> RhaiResult<f64> {
        if hi < lo || hi.is_nan() || lo.is_nan() {
            return fail(format!(
                "rand_float({lo}, {hi}): the upper bound is below the lower"
            ));
        }
        Ok(lo + (hi - lo) * rand::rng().random::<f64>())
    });
    e.register_fn("choice", |a: Array| -> RhaiResult<Dynamic> {
        if a.is_empty() {
            return fail("choice([]): the array is empty".into());
        }
        let i = rand::rng().random_range(0..a.len());
        Ok(a[i].clone())
    });
    e.register_fn("uuid", || uuid::Uuid::new_v4().to_string());
    e.register_fn("now_ms", || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    });
    e.register_fn("now_s", || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    });
    e.register_fn("min", |a: f64, b: f64| a.min(b));
    e.register_fn("max", |a: f64, b: f64| a.max(b));
    e.register_fn("min", |a: i64, b: f64| (a as f64).min(b));
    e.register_fn("min", |a: f64, b: i64| a.min(b as f64));
    e.register_fn("max", |a: i64, b: f64| (a as f64).max(b));
    e.register_fn("max", |a: f64, b: i64| a.max(b as f64));
    e.register_fn("round_to", |v: f64, digits: i64| {
        let m = 10f64.powi(digits.clamp(0, 12) as i32);
        (v * m).round() / m
    });
    e.register_fn("to_number", |s: &str| -> RhaiResult<f64> {
        s.trim()
            .parse::<f64>()
            .or_else(|_| fail(format!("to_number: `{s}` is not a number")))
    });
    e.register_fn("json_parse", |s: &str| -> RhaiResult<Dynamic> {
        serde_json::from_str::<serde_json::Value>(s)
            .map(|v| from_json(&v))
            .or_else(|err| fail(format!("json_parse: {err}")))
    });
    e.register_fn("json_stringify", |v: Dynamic| to_json(&v).to_string());
    e.register_fn("base64_encode", |s: &str| {
        base64::engine::general_purpose::STANDARD.encode(s)
    });
    e.register_fn("base64_decode", |s: &str| -> RhaiResult<String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .or_else(|err| fail(format!("base64_decode: {err}")))?;
        String::from_utf8(bytes)
            .or_else(|_| fail("base64_decode: the data is not UTF-8 text".into()))
    });
    e.register_fn("sha256_hex", |s: &str| {
        hex::encode(Sha256::digest(s.as_bytes()))
    });
    e.register_fn("hmac_sha256_hex", |key: &str, msg: &str| {
        hex::encode(hmac_sha256(key, msg))
    });
    e.register_fn("hmac_sha256_base64", |key: &str, msg: &str| {
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(key, msg))
    });
    // Rhai's own `sleep` is one native call that blocks the thread, out of reach of the operation
    // count and the wall-time limit: a journey waits with `think`, never inside a script.
    e.register_fn("sleep", |_: i64| -> RhaiResult<()> {
        fail("sleep() is not available in scripts: use a `think` step to wait".into())
    });
    e.register_fn("sleep", |_: f64| -> RhaiResult<()> {
        fail("sleep() is not available in scripts: use a `think` step to wait".into())
    });
    e.register_fn("env", |name: &str| std::env::var(name).unwrap_or_default());
    e.register_fn("env", |name: &str, default: &str| {
        std::env::var(name).unwrap_or_else(|_| default.to_string())
    });
}

/// HMAC-SHA256 of `msg` under `key`.
pub fn hmac_sha256(key: &str, msg: &str) -> Vec<u8> {
    match Hmac::<Sha256>::new_from_slice(key.as_bytes()) {
        Ok(mut mac) => {
            mac.update(msg.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC accepts keys of every length, so this arm is unreachable in practice.
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin {
            file: PathBuf::from("s.yaml"),
            first_line: 10,
            first_col: 5,
        }
    }

    #[test]
    fn snippets_share_library_functions_and_vu_state() {
        let mut s = Scripts::new();
        s.add_file(
            Path::new("lib.rhai"),
            "fn double(x) { x * 2 }\nlet counter = 0;",
        )
        .unwrap();
        let step = s
            .compile("counter = double(counter + 1);", origin())
            .unwrap();
        let mut scope = Scope::new();
        s.init_vu(&mut scope).unwrap();
        s.run(&step, &mut scope).unwrap();
        s.run(&step, &mut scope).unwrap();
        assert_eq!(scope.get_value::<i64>("counter"), Some(6));
    }

    #[test]
    fn runtime_errors_name_file_and_line() {
        let s = Scripts::new();
        let step = s.compile("let a = 1;\nlet b = a / 0;", origin()).unwrap();
        let err = s.run(&step, &mut Scope::new()).unwrap_err();
        assert_eq!((err.file.as_str(), err.line), ("s.yaml", 11));
        assert!(err.message.contains("Division by zero"), "{}", err.message);
    }

    #[test]
    fn compile_errors_carry_positions() {
        let s = Scripts::new();
        let err = s.compile("let x = ;", origin()).unwrap_err();
        assert_eq!(err.line, 10);
    }

    #[test]
    fn sandbox_stops_runaway_scripts() {
        let s = Scripts::new();
        let mut scope = Scope::new();
        let looped = s.compile("loop { }", origin()).unwrap();
        assert!(
            s.run(&looped, &mut scope)
                .unwrap_err()
                .message
                .contains("operations")
        );
        let deep = s.compile("fn f(x) { f(x + 1) } f(0)", origin()).unwrap();
        assert!(s.run(&deep, &mut scope).is_err());
        let big = s
            .compile("let s = \"x\"; loop { s += s; }", origin())
            .unwrap();
        assert!(s.run(&big, &mut scope).is_err());
        assert!(s.compile("eval(\"1\")", origin()).is_err());
    }

    #[test]
    fn scripts_cannot_touch_files_sockets_or_processes() {
        // Rhai's own ways out are `import` (its file module resolver reads any `.rhai` file) and
        // `eval` (compiles text at run time); it has no file, socket or process functions unless
        // registered. A real module file exists here, so only the limit can stop the import.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("evil.rhai"), "fn secret() { 42 }").unwrap();
        let module = dir.path().join("evil");
        let s = Scripts::new();
        let code = format!(
            "import {:?} as m; m::secret()",
            module.display().to_string()
        );
        let refused = match s.compile(&code, origin()) {
            Err(e) => e.message,
            Ok(step) => s.run(&step, &mut Scope::new()).unwrap_err().message,
        };
        assert!(
            refused.contains("Too many modules imported"),
            "importing a real module file is refused: {refused}"
        );
        // The same file imports with an engine that allows modules, so the check is not hollow.
        let mut open = Engine::new();
        open.set_max_modules(1);
        assert_eq!(open.eval::<i64>(&code).unwrap(), 42);
        // `eval` is off: at compile time, or failing at run time.
        let evaled = match s.compile(r#"eval("40 + 2")"#, origin()) {
            Err(e) => e.message,
            Ok(step) => s.run(&step, &mut Scope::new()).unwrap_err().message,
        };
        assert!(evaled.contains("eval"), "{evaled}");
        // Rhai's `sleep` blocks the thread beyond every limit: it must fail at once.
        let step = s.compile("sleep(30)", origin()).unwrap();
        let started = std::time::Instant::now();
        let slept = s.run(&step, &mut Scope::new()).unwrap_err().message;
        assert!(started.elapsed() < Duration::from_secs(5), "{slept}");
        assert!(slept.contains("think"), "{slept}");
    }

    #[test]
    fn helpers_sign_and_encode() {
        let s = Scripts::new();
        // Declared names, as a user's scope has them; a snippet's own `let`s would die with it.
        let mut scope = Scope::new();
        for name in ["h", "j", "b"] {
            scope.push_dynamic(name, Dynamic::UNIT);
        }
        let step = s
            .compile(
                r#"h = hmac_sha256_hex("key", "The quick brown fox jumps over the lazy dog");
                   j = json_stringify(json_parse("{\"a\":[1,2]}"));
                   let local = base64_encode("hi");
                   b = base64_decode(local);"#,
                origin(),
            )
            .unwrap();
        s.run(&step, &mut scope).unwrap();
        assert_eq!(
            scope.get_value::<ImmutableString>("h").unwrap().as_str(),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        assert_eq!(
            scope.get_value::<ImmutableString>("j").unwrap().as_str(),
            r#"{"a":[1,2]}"#
        );
        assert_eq!(
            scope.get_value::<ImmutableString>("b").unwrap().as_str(),
            "hi"
        );
        assert!(
            scope.get("local").is_none(),
            "the snippet's let died with it"
        );
    }
}
