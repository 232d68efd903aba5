//! The WASI preview 1 subset the sandbox offers, implemented over in-memory state so that a
//! job has no ambient authority and every call is deterministic.
//!
//! - fd 0 reads the spec's stdin; fds 1 and 2 are captured (stdout up to its limit, beyond
//!   which the job ends with `OutputTooLarge`; stderr truncated).
//! - fd 3 is the preopened read-only directory `/input` (the spec's inputs), fd 4 the
//!   preopened write-only directory `/output`. Both are flat: names have no `/`.
//! - Clocks are virtual: every clock reads the fuel burned so far, in nanoseconds, plus
//!   whatever the guest slept through `poll_oneoff`.
//! - `random_get` is ChaCha20 seeded from the job id.
//! - Sockets answer `ENOTSUP`; anything not in [`FUNCTIONS`] is refused at load.
//!
//! Every host call costs [`HOST_CALL_FUEL`] plus one fuel per [`BYTES_PER_FUEL`] bytes moved.

use std::collections::BTreeMap;

use rand::RngCore;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use wasmtime::{Caller, Linker};

use crate::host::{self, Host, LimitHit, charge};
use crate::spec::{Inputs, JobSpec, is_flat_name};

/// The module name of WASI preview 1.
pub const MODULE: &str = "wasi_snapshot_preview1";

/// The WASI preview 1 functions a job may import.
pub const FUNCTIONS: &[&str] = &[
    "args_get",
    "args_sizes_get",
    "environ_get",
    "environ_sizes_get",
    "clock_res_get",
    "clock_time_get",
    "fd_close",
    "fd_datasync",
    "fd_fdstat_get",
    "fd_fdstat_set_flags",
    "fd_filestat_get",
    "fd_pread",
    "fd_prestat_get",
    "fd_prestat_dir_name",
    "fd_read",
    "fd_readdir",
    "fd_seek",
    "fd_sync",
    "fd_tell",
    "fd_write",
    "path_filestat_get",
    "path_open",
    "path_unlink_file",
    "poll_oneoff",
    "proc_exit",
    "random_get",
    "sched_yield",
    "sock_accept",
    "sock_recv",
    "sock_send",
    "sock_shutdown",
];

/// Fuel charged for every host call, on top of the instructions the guest runs.
pub const HOST_CALL_FUEL: u64 = 100;
/// A host call that moves bytes costs one more fuel per this many bytes.
pub const BYTES_PER_FUEL: u64 = 8;

/// Most file descriptors a job may hold open at once.
const MAX_FDS: usize = 64;
/// Most iovecs or subscriptions one call may pass.
const MAX_VECTORS: u32 = 1024;

const FD_INPUT: u32 = 3;
const FD_OUTPUT: u32 = 4;

const RIGHT_FD_READ: u64 = 1 << 1;
const RIGHT_FD_WRITE: u64 = 1 << 6;
const ALL_RIGHTS: u64 = (1 << 30) - 1;

const FDFLAG_APPEND: i32 = 1;
const OFLAG_CREAT: i32 = 1;
const OFLAG_DIRECTORY: i32 = 2;
const OFLAG_EXCL: i32 = 4;
const OFLAG_TRUNC: i32 = 8;

const FILETYPE_CHAR: u8 = 2;
const FILETYPE_DIR: u8 = 3;
const FILETYPE_FILE: u8 = 4;

/// WASI errno values used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub(crate) enum Errno {
    Acces = 2,
    Badf = 8,
    Exist = 20,
    Fault = 21,
    Inval = 28,
    Isdir = 31,
    Mfile = 33,
    Nametoolong = 37,
    Noent = 44,
    Nospc = 51,
    Notdir = 54,
    Notsup = 58,
    Overflow = 61,
    Spipe = 70,
    Notcapable = 76,
}

/// A host call either fails with an errno the guest sees, or ends the job.
enum Fail {
    Errno(Errno),
    End(wasmtime::Error),
}

impl From<Errno> for Fail {
    fn from(e: Errno) -> Self {
        Self::Errno(e)
    }
}

type Ret = Result<(), Fail>;

/// The guest called `proc_exit(code)`.
#[derive(Debug, thiserror::Error)]
#[error("guest exited with code {0}")]
pub(crate) struct GuestExit(pub(crate) i32);

#[derive(Debug, Clone)]
enum Fd {
    Stdin,
    Stdout,
    Stderr,
    InputDir,
    OutputDir,
    Input {
        name: String,
        pos: u64,
    },
    Output {
        name: String,
        pos: u64,
        append: bool,
    },
}

/// The per-job WASI state.
pub(crate) struct WasiState {
    args: Vec<Vec<u8>>,
    env: Vec<Vec<u8>>,
    stdin: Vec<u8>,
    stdin_pos: usize,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
    stdout_cap: usize,
    stderr_cap: usize,
    /// The spec's inputs: shared with the spec (and every other job given the same files).
    inputs: Inputs,
    pub(crate) outputs: sietch_market::OutputFiles,
    output_bytes: usize,
    output_cap: usize,
    output_files_cap: usize,
    fds: BTreeMap<u32, Fd>,
    slept_ns: u64,
    pub(crate) fuel_limit: u64,
    rng: ChaCha20Rng,
}

impl WasiState {
    pub(crate) fn new(spec: &JobSpec) -> Self {
        let mut args = vec![b"job\0".to_vec()];
        args.extend(spec.args.iter().map(|a| nul_terminated(a.as_bytes())));
        let env = spec
            .env
            .iter()
            .map(|(k, v)| nul_terminated(format!("{k}={v}").as_bytes()))
            .collect();
        let fds = BTreeMap::from([
            (0, Fd::Stdin),
            (1, Fd::Stdout),
            (2, Fd::Stderr),
            (FD_INPUT, Fd::InputDir),
            (FD_OUTPUT, Fd::OutputDir),
        ]);
        let seed = blake3::derive_key("sietch sandbox random_get v1", &spec.job_id);
        Self {
            args,
            env,
            stdin: spec.stdin.clone(),
            stdin_pos: 0,
            stdout: Vec::new(),
            stderr: Vec::new(),
            stdout_cap: spec.limits.stdout_bytes,
            stderr_cap: spec.limits.stderr_bytes,
            inputs: spec.inputs.clone(),
            outputs: BTreeMap::new(),
            output_bytes: 0,
            output_cap: spec.limits.output_bytes,
            output_files_cap: spec.limits.output_files,
            fds,
            slept_ns: 0,
            fuel_limit: spec.limits.fuel,
            rng: ChaCha20Rng::from_seed(seed),
        }
    }

    fn fd(&self, fd: i32) -> Result<&Fd, Errno> {
        u32::try_from(fd)
            .ok()
            .and_then(|fd| self.fds.get(&fd))
            .ok_or(Errno::Badf)
    }

    fn fd_mut(&mut self, fd: i32) -> Result<&mut Fd, Errno> {
        u32::try_from(fd)
            .ok()
            .and_then(|fd| self.fds.get_mut(&fd))
            .ok_or(Errno::Badf)
    }

    fn insert_fd(&mut self, entry: Fd) -> Result<u32, Errno> {
        if self.fds.len() >= MAX_FDS {
            return Err(Errno::Mfile);
        }
        // Lowest free number, as POSIX does: deterministic.
        let mut n = 0u32;
        while self.fds.contains_key(&n) {
            n += 1;
        }
        self.fds.insert(n, entry);
        Ok(n)
    }

    fn write_output(&mut self, name: &str, pos: u64, data: &[u8]) -> Result<u64, Fail> {
        let file = self.outputs.get_mut(name).ok_or(Errno::Badf)?;
        let start = usize::try_from(pos).map_err(|_| Fail::End(LimitHit::Output.into()))?;
        let end = start.checked_add(data.len()).ok_or(Errno::Overflow)?;
        let grow = end.saturating_sub(file.len());
        if self.output_bytes.saturating_add(grow) > self.output_cap {
            return Err(Fail::End(LimitHit::Output.into()));
        }
        if grow > 0 {
            file.resize(end, 0);
            self.output_bytes += grow;
        }
        if let Some(dst) = file.get_mut(start..end) {
            dst.copy_from_slice(data);
        }
        Ok(end as u64)
    }

    /// The contents of the `/input` file open on `fd`; `EBADF` for any other descriptor.
    pub(crate) fn input_data(&self, fd: i32) -> Result<&[u8], Errno> {
        match self.fd(fd)? {
            Fd::Input { name, .. } => self.inputs.get(name).map(|d| &d[..]).ok_or(Errno::Badf),
            _ => Err(Errno::Badf),
        }
    }

    /// The `/input` file named `name`, for tests of sharing.
    #[cfg(test)]
    pub(crate) fn input_bytes(&self, name: &str) -> Option<&[u8]> {
        self.inputs.get(name).map(|d| &d[..])
    }

    fn lookup(&self, dir: &Fd, name: &str) -> Option<u64> {
        match dir {
            Fd::InputDir => self.inputs.get(name).map(|d| d.len() as u64),
            Fd::OutputDir => self.outputs.get(name).map(|d| d.len() as u64),
            _ => None,
        }
    }
}

fn nul_terminated(s: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s);
    v.push(0);
    v
}

// ---- guest memory access: every pointer is checked; a bad one is EFAULT, never a panic ----

fn range(ptr: i32, len: u64) -> Result<std::ops::Range<usize>, Errno> {
    let start = ptr as u32 as usize;
    let len = usize::try_from(len).map_err(|_| Errno::Fault)?;
    let end = start.checked_add(len).ok_or(Errno::Fault)?;
    Ok(start..end)
}

fn bytes(mem: &[u8], ptr: i32, len: u64) -> Result<&[u8], Errno> {
    mem.get(range(ptr, len)?).ok_or(Errno::Fault)
}

fn bytes_mut(mem: &mut [u8], ptr: i32, len: u64) -> Result<&mut [u8], Errno> {
    mem.get_mut(range(ptr, len)?).ok_or(Errno::Fault)
}

fn put(mem: &mut [u8], ptr: i32, value: &[u8]) -> Result<(), Errno> {
    bytes_mut(mem, ptr, value.len() as u64)?.copy_from_slice(value);
    Ok(())
}

fn put_u32(mem: &mut [u8], ptr: i32, v: u32) -> Result<(), Errno> {
    put(mem, ptr, &v.to_le_bytes())
}

fn put_u64(mem: &mut [u8], ptr: i32, v: u64) -> Result<(), Errno> {
    put(mem, ptr, &v.to_le_bytes())
}

fn get_u32(mem: &[u8], ptr: i32) -> Result<u32, Errno> {
    let b = bytes(mem, ptr, 4)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    Ok(u32::from_le_bytes(a))
}

fn get_u64(mem: &[u8], ptr: i32) -> Result<u64, Errno> {
    let b = bytes(mem, ptr, 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Ok(u64::from_le_bytes(a))
}

fn offset(ptr: i32, by: u64) -> Result<i32, Errno> {
    let p = u64::from(ptr as u32).checked_add(by).ok_or(Errno::Fault)?;
    u32::try_from(p).map(|p| p as i32).map_err(|_| Errno::Fault)
}

/// The iovecs `(ptr, len)` of a scatter/gather call.
fn iovecs(mem: &[u8], iovs: i32, count: i32) -> Result<Vec<(i32, u32)>, Errno> {
    let count = u32::try_from(count).map_err(|_| Errno::Inval)?;
    if count > MAX_VECTORS {
        return Err(Errno::Inval);
    }
    (0..u64::from(count))
        .map(|i| {
            let at = offset(iovs, i * 8)?;
            Ok((get_u32(mem, at)? as i32, get_u32(mem, offset(at, 4)?)?))
        })
        .collect()
}

fn path(mem: &[u8], ptr: i32, len: i32) -> Result<&str, Errno> {
    let len = u32::try_from(len).map_err(|_| Errno::Inval)?;
    if len > 4096 {
        return Err(Errno::Nametoolong);
    }
    std::str::from_utf8(bytes(mem, ptr, u64::from(len))?).map_err(|_| Errno::Inval)
}

/// A name inside a flat preopen: `..`, absolute paths and escapes are not capable; other
/// subdirectories do not exist.
fn flat_name(path: &str) -> Result<&str, Errno> {
    let p = path.strip_prefix("./").unwrap_or(path);
    if p.starts_with('/') || p.split('/').any(|c| c == "..") {
        return Err(Errno::Notcapable);
    }
    if !is_flat_name(p) {
        return Err(Errno::Noent);
    }
    Ok(p)
}

// ---- plumbing between wasmtime and the functions above ----

fn finish<T>(caller: &mut Caller<'_, T>, r: Ret, moved: u64) -> wasmtime::Result<i32> {
    charge(caller, HOST_CALL_FUEL + moved / BYTES_PER_FUEL)?;
    match r {
        Ok(()) => Ok(0),
        Err(Fail::Errno(e)) => Ok(e as i32),
        Err(Fail::End(err)) => Err(err),
    }
}

/// The store data of a job, as WASI sees it: the memory and the WASI state.
pub(crate) trait WasiHost: Host {
    /// The job's WASI state.
    fn wasi(&self) -> &WasiState;
    /// The job's WASI state, mutably.
    fn wasi_mut(&mut self) -> &mut WasiState;
}

/// The guest's memory and the job's WASI state, borrowed together.
pub(crate) fn split<'a, T: WasiHost>(
    caller: &'a mut Caller<'_, T>,
) -> Result<(&'a mut [u8], &'a mut WasiState), Errno> {
    let (mem, st) = host::split(caller).ok_or(Errno::Fault)?;
    Ok((mem, st.wasi_mut()))
}

fn virtual_now<T: WasiHost>(caller: &mut Caller<'_, T>) -> u64 {
    let left = caller.get_fuel().unwrap_or(0);
    let w = caller.data().wasi();
    w.fuel_limit.saturating_sub(left).saturating_add(w.slept_ns)
}

/// Registers the WASI subset on `linker`.
pub(crate) fn add_to_linker<T: WasiHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.func_wrap(
        MODULE,
        "args_get",
        |mut c: Caller<'_, T>, argv: i32, buf: i32| {
            let mut moved = 0;
            let r = (|| {
                let (mem, st) = split(&mut c)?;
                moved = list_get(mem, &st.args, argv, buf)?;
                Ok(())
            })();
            finish(&mut c, r, moved)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "args_sizes_get",
        |mut c: Caller<'_, T>, n: i32, size: i32| {
            let r = (|| {
                let (mem, st) = split(&mut c)?;
                list_sizes(mem, &st.args, n, size)
            })();
            finish(&mut c, r.map_err(Fail::from), 0)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "environ_get",
        |mut c: Caller<'_, T>, env: i32, buf: i32| {
            let mut moved = 0;
            let r = (|| {
                let (mem, st) = split(&mut c)?;
                moved = list_get(mem, &st.env, env, buf)?;
                Ok(())
            })();
            finish(&mut c, r, moved)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "environ_sizes_get",
        |mut c: Caller<'_, T>, n: i32, size: i32| {
            let r = (|| {
                let (mem, st) = split(&mut c)?;
                list_sizes(mem, &st.env, n, size)
            })();
            finish(&mut c, r.map_err(Fail::from), 0)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "clock_res_get",
        |mut c: Caller<'_, T>, id: i32, out: i32| {
            let r = (|| {
                if !(0..=3).contains(&id) {
                    return Err(Errno::Inval);
                }
                let (mem, _) = split(&mut c)?;
                put_u64(mem, out, 1)
            })();
            finish(&mut c, r.map_err(Fail::from), 0)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "clock_time_get",
        |mut c: Caller<'_, T>, id: i32, _precision: i64, out: i32| {
            let now = virtual_now(&mut c);
            let r = (|| {
                if !(0..=3).contains(&id) {
                    return Err(Errno::Inval);
                }
                let (mem, _) = split(&mut c)?;
                put_u64(mem, out, now)
            })();
            finish(&mut c, r.map_err(Fail::from), 0)
        },
    )?;
    linker.func_wrap(MODULE, "fd_close", |mut c: Caller<'_, T>, fd: i32| {
        let st = c.data_mut().wasi_mut();
        let r = st.fd(fd).map(|_| ()).map(|()| {
            st.fds.remove(&(fd as u32));
        });
        finish(&mut c, r.map_err(Fail::from), 0)
    })?;
    for name in ["fd_sync", "fd_datasync"] {
        linker.func_wrap(MODULE, name, |mut c: Caller<'_, T>, fd: i32| {
            let r = c.data().wasi().fd(fd).map(|_| ());
            finish(&mut c, r.map_err(Fail::from), 0)
        })?;
    }
    linker.func_wrap(
        MODULE,
        "fd_fdstat_get",
        |mut c: Caller<'_, T>, fd: i32, out: i32| {
            let r = (|| {
                let (mem, st) = split(&mut c)?;
                let filetype = filetype(st.fd(fd)?);
                let mut stat = [0u8; 24];
                stat[0] = filetype;
                stat[8..16].copy_from_slice(&ALL_RIGHTS.to_le_bytes());
                stat[16..24].copy_from_slice(&ALL_RIGHTS.to_le_bytes());
                put(mem, out, &stat)
            })();
            finish(&mut c, r.map_err(Fail::from), 0)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_fdstat_set_flags",
        |mut c: Caller<'_, T>, fd: i32, _flags: i32| {
            let r = c.data().wasi().fd(fd).map(|_| ());
            finish(&mut c, r.map_err(Fail::from), 0)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_filestat_get",
        |mut c: Caller<'_, T>, fd: i32, out: i32| {
            let r = (|| {
                let (mem, st) = split(&mut c)?;
                let w = st;
                let entry = w.fd(fd)?;
                let size = match entry {
                    Fd::Input { name, .. } => w.inputs.get(name).map_or(0, |d| d.len() as u64),
                    Fd::Output { name, .. } => w.outputs.get(name).map_or(0, |d| d.len() as u64),
                    _ => 0,
                };
                put(
                    mem,
                    out,
                    &filestat(filetype(entry), size, u64::from(fd as u32)),
                )
            })();
            finish(&mut c, r.map_err(Fail::from), 0)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_prestat_get",
        |mut c: Caller<'_, T>, fd: i32, out: i32| {
            let r = (|| {
                let (mem, st) = split(&mut c)?;
                let name = preopen_name(st, fd)?;
                let mut stat = [0u8; 8];
                stat[4..8].copy_from_slice(&(name.len() as u32).to_le_bytes());
                put(mem, out, &stat)
            })();
            finish(&mut c, r.map_err(Fail::from), 0)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_prestat_dir_name",
        |mut c: Caller<'_, T>, fd: i32, buf: i32, len: i32| {
            let r = (|| {
                let (mem, st) = split(&mut c)?;
                let name = preopen_name(st, fd)?;
                if (len as u32 as usize) < name.len() {
                    return Err(Errno::Nametoolong);
                }
                put(mem, buf, name.as_bytes())
            })();
            finish(&mut c, r.map_err(Fail::from), 0)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_read",
        |mut c: Caller<'_, T>, fd: i32, iovs: i32, count: i32, nread: i32| {
            let mut moved = 0u64;
            let r = (|| {
                let (mem, st) = split(&mut c)?;
                let w = st;
                let vecs = iovecs(mem, iovs, count)?;
                let (src, pos): (&[u8], u64) = match w.fd(fd)? {
                    Fd::Stdin => (&w.stdin, w.stdin_pos as u64),
                    Fd::Input { name, pos } => {
                        (w.inputs.get(name).map_or(&[][..], |d| &d[..]), *pos)
                    }
                    Fd::InputDir | Fd::OutputDir => return Err(Errno::Isdir.into()),
                    _ => return Err(Errno::Badf.into()),
                };
                scatter(mem, src, pos, &vecs, &mut moved)?;
                let at = pos.saturating_add(moved);
                match w.fd_mut(fd)? {
                    Fd::Stdin => w.stdin_pos = usize::try_from(at).unwrap_or(usize::MAX),
                    Fd::Input { pos, .. } => *pos = at,
                    _ => {}
                }
                put_u32(mem, nread, moved as u32)?;
                Ok(())
            })();
            finish(&mut c, r, moved)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_pread",
        |mut c: Caller<'_, T>, fd: i32, iovs: i32, count: i32, offset: i64, nread: i32| {
            let mut moved = 0u64;
            let r = (|| {
                let (mem, st) = split(&mut c)?;
                let w = st;
                let vecs = iovecs(mem, iovs, count)?;
                // Reads at `offset` (unsigned, as WASI defines it) and leaves the position.
                let src = match w.fd(fd)? {
                    Fd::Input { name, .. } => w.inputs.get(name).map_or(&[][..], |d| &d[..]),
                    Fd::InputDir | Fd::OutputDir => return Err(Errno::Isdir.into()),
                    Fd::Stdin | Fd::Stdout | Fd::Stderr => return Err(Errno::Spipe.into()),
                    Fd::Output { .. } => return Err(Errno::Badf.into()),
                };
                scatter(mem, src, offset as u64, &vecs, &mut moved)?;
                put_u32(mem, nread, moved as u32)?;
                Ok(())
            })();
            finish(&mut c, r, moved)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_write",
        |mut c: Caller<'_, T>, fd: i32, iovs: i32, count: i32, nwritten: i32| {
            let mut moved = 0u64;
            let r = (|| {
                let (mem, st) = split(&mut c)?;
                let w = st;
                let vecs = iovecs(mem, iovs, count)?;
                let entry = w.fd(fd)?.clone();
                for (ptr, len) in vecs {
                    let data = bytes(mem, ptr, u64::from(len))?;
                    match &entry {
                        Fd::Stdout => {
                            if w.stdout.len().saturating_add(data.len()) > w.stdout_cap {
                                return Err(Fail::End(LimitHit::Output.into()));
                            }
                            w.stdout.extend_from_slice(data);
                        }
                        Fd::Stderr => {
                            let room = w.stderr_cap.saturating_sub(w.stderr.len());
                            w.stderr
                                .extend_from_slice(data.get(..room.min(data.len())).unwrap_or(&[]));
                        }
                        Fd::Output { name, .. } => {
                            let pos = match w.fd(fd)? {
                                Fd::Output { append: true, .. } => {
                                    w.outputs.get(name).map_or(0, |d| d.len() as u64)
                                }
                                Fd::Output { pos, .. } => *pos,
                                _ => 0,
                            };
                            let end = w.write_output(name, pos, data)?;
                            if let Fd::Output { pos, .. } = w.fd_mut(fd)? {
                                *pos = end;
                            }
                        }
                        Fd::InputDir | Fd::OutputDir => return Err(Errno::Isdir.into()),
                        Fd::Stdin | Fd::Input { .. } => return Err(Errno::Badf.into()),
                    }
                    moved += u64::from(len);
                }
                put_u32(mem, nwritten, moved as u32)?;
                Ok(())
            })();
            finish(&mut c, r, moved)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_seek",
        |mut c: Caller<'_, T>, fd: i32, delta: i64, whence: i32, out: i32| {
            let r = (|| {
                let (mem, st) = split(&mut c)?;
                let new = seek(st, fd, delta, whence)?;
                put_u64(mem, out, new)
            })();
            finish(&mut c, r.map_err(Fail::from), 0)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_tell",
        |mut c: Caller<'_, T>, fd: i32, out: i32| {
            let r = (|| {
                let (mem, st) = split(&mut c)?;
                let new = seek(st, fd, 0, 1)?;
                put_u64(mem, out, new)
            })();
            finish(&mut c, r.map_err(Fail::from), 0)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_readdir",
        |mut c: Caller<'_, T>, fd: i32, buf: i32, len: i32, cookie: i64, used: i32| {
            let mut moved = 0u64;
            let r = (|| {
                let (mem, st) = split(&mut c)?;
                let w = st;
                let names: Vec<&String> = match w.fd(fd)? {
                    Fd::InputDir => w.inputs.keys().collect(),
                    Fd::OutputDir => w.outputs.keys().collect(),
                    _ => return Err(Errno::Notdir),
                };
                let cap = len as u32 as usize;
                let mut out = Vec::new();
                for (i, name) in names.iter().enumerate().skip(cookie as u64 as usize) {
                    if out.len() >= cap {
                        break;
                    }
                    out.extend_from_slice(&(i as u64 + 1).to_le_bytes());
                    out.extend_from_slice(&(i as u64 + 1).to_le_bytes());
                    out.extend_from_slice(&(name.len() as u32).to_le_bytes());
                    out.extend_from_slice(&[FILETYPE_FILE, 0, 0, 0]);
                    out.extend_from_slice(name.as_bytes());
                }
                out.truncate(cap);
                moved = out.len() as u64;
                put(mem, buf, &out)?;
                put_u32(mem, used, out.len() as u32)
            })();
            finish(&mut c, r.map_err(Fail::from), moved)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "path_filestat_get",
        |mut c: Caller<'_, T>, fd: i32, _flags: i32, p: i32, plen: i32, out: i32| {
            let r = (|| {
                let (mem, st) = split(&mut c)?;
                let w = st;
                let dir = w.fd(fd)?;
                if !matches!(dir, Fd::InputDir | Fd::OutputDir) {
                    return Err(Errno::Notdir);
                }
                let p = path(mem, p, plen)?;
                let stat = if p == "." {
                    filestat(FILETYPE_DIR, 0, u64::from(fd as u32))
                } else {
                    let name = flat_name(p)?;
                    let size = w.lookup(dir, name).ok_or(Errno::Noent)?;
                    filestat(FILETYPE_FILE, size, 100)
                };
                put(mem, out, &stat)
            })();
            finish(&mut c, r.map_err(Fail::from), 0)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "path_open",
        |mut c: Caller<'_, T>,
         dirfd: i32,
         _dirflags: i32,
         p: i32,
         plen: i32,
         oflags: i32,
         rights: i64,
         _inheriting: i64,
         fdflags: i32,
         out: i32| {
            let r = (|| {
                let (mem, st) = split(&mut c)?;
                let p = path(mem, p, plen)?.to_string();
                let fd = open(st, dirfd, &p, oflags, rights as u64, fdflags)?;
                put_u32(mem, out, fd)
            })();
            finish(&mut c, r.map_err(Fail::from), 0)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "path_unlink_file",
        |mut c: Caller<'_, T>, fd: i32, p: i32, plen: i32| {
            let r = (|| {
                let (mem, st) = split(&mut c)?;
                let w = st;
                let p = path(mem, p, plen)?;
                match w.fd(fd)? {
                    Fd::OutputDir => {}
                    Fd::InputDir => return Err(Errno::Acces),
                    _ => return Err(Errno::Notdir),
                }
                let name = flat_name(p)?;
                let data = w.outputs.remove(name).ok_or(Errno::Noent)?;
                w.output_bytes -= data.len();
                Ok(())
            })();
            finish(&mut c, r.map_err(Fail::from), 0)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "poll_oneoff",
        |mut c: Caller<'_, T>, subs: i32, events: i32, n: i32, nevents: i32| {
            let r = (|| {
                let (mem, st) = split(&mut c)?;
                let n = u32::try_from(n).map_err(|_| Errno::Inval)?;
                if n == 0 || n > MAX_VECTORS {
                    return Err(Errno::Inval);
                }
                // Every subscription is ready at once; a clock one advances the virtual clock.
                let mut sleep = 0u64;
                for i in 0..u64::from(n) {
                    let sub = offset(subs, i * 48)?;
                    let userdata = get_u64(mem, sub)?;
                    let tag = *bytes(mem, offset(sub, 8)?, 1)?
                        .first()
                        .ok_or(Errno::Fault)?;
                    if tag == 0 {
                        let timeout = get_u64(mem, offset(sub, 24)?)?;
                        sleep = sleep.max(timeout);
                    }
                    let mut ev = [0u8; 32];
                    ev[0..8].copy_from_slice(&userdata.to_le_bytes());
                    ev[10] = tag;
                    put(mem, offset(events, i * 32)?, &ev)?;
                }
                st.slept_ns = st.slept_ns.saturating_add(sleep);
                put_u32(mem, nevents, n)
            })();
            finish(&mut c, r.map_err(Fail::from), 0)
        },
    )?;
    linker.func_wrap(MODULE, "proc_exit", |_c: Caller<'_, T>, code: i32| {
        Err::<(), _>(wasmtime::Error::new(GuestExit(code)))
    })?;
    linker.func_wrap(
        MODULE,
        "random_get",
        |mut c: Caller<'_, T>, buf: i32, len: i32| {
            let mut moved = 0;
            let r = (|| -> Result<(), Errno> {
                let (mem, st) = split(&mut c)?;
                let dst = bytes_mut(mem, buf, u64::from(len as u32))?;
                st.rng.fill_bytes(dst);
                moved = dst.len() as u64;
                Ok(())
            })();
            finish(&mut c, r.map_err(Fail::from), moved)
        },
    )?;
    linker.func_wrap(MODULE, "sched_yield", |mut c: Caller<'_, T>| {
        finish(&mut c, Ok(()), 0)
    })?;
    linker.func_wrap(
        MODULE,
        "sock_accept",
        |mut c: Caller<'_, T>, _: i32, _: i32, _: i32| finish(&mut c, Err(Errno::Notsup.into()), 0),
    )?;
    linker.func_wrap(
        MODULE,
        "sock_recv",
        |mut c: Caller<'_, T>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| {
            finish(&mut c, Err(Errno::Notsup.into()), 0)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "sock_send",
        |mut c: Caller<'_, T>, _: i32, _: i32, _: i32, _: i32, _: i32| {
            finish(&mut c, Err(Errno::Notsup.into()), 0)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "sock_shutdown",
        |mut c: Caller<'_, T>, _: i32, _: i32| finish(&mut c, Err(Errno::Notsup.into()), 0),
    )?;
    Ok(())
}

/// Copies `src` from byte `pos` into the iovecs in order, stopping at the end of `src`, and
/// counts the bytes copied in `moved` (what was copied before a bad iovec is still billed).
fn scatter(
    mem: &mut [u8],
    src: &[u8],
    pos: u64,
    vecs: &[(i32, u32)],
    moved: &mut u64,
) -> Result<(), Errno> {
    let mut at = usize::try_from(pos).unwrap_or(usize::MAX);
    for &(ptr, len) in vecs {
        let rest = src.get(at..).unwrap_or(&[]);
        let n = rest.len().min(len as usize);
        put(mem, ptr, rest.get(..n).unwrap_or(&[]))?;
        at = at.saturating_add(n);
        *moved += n as u64;
        if n < len as usize {
            break;
        }
    }
    Ok(())
}

fn list_get(mem: &mut [u8], items: &[Vec<u8>], ptrs: i32, buf: i32) -> Result<u64, Fail> {
    let mut at = buf;
    let mut moved = 0u64;
    for (i, item) in items.iter().enumerate() {
        put_u32(mem, offset(ptrs, i as u64 * 4)?, at as u32)?;
        put(mem, at, item)?;
        at = offset(at, item.len() as u64)?;
        moved += item.len() as u64;
    }
    Ok(moved)
}

fn list_sizes(mem: &mut [u8], items: &[Vec<u8>], n: i32, size: i32) -> Result<(), Errno> {
    put_u32(mem, n, items.len() as u32)?;
    put_u32(mem, size, items.iter().map(|i| i.len() as u32).sum())
}

fn filetype(fd: &Fd) -> u8 {
    match fd {
        Fd::Stdin | Fd::Stdout | Fd::Stderr => FILETYPE_CHAR,
        Fd::InputDir | Fd::OutputDir => FILETYPE_DIR,
        Fd::Input { .. } | Fd::Output { .. } => FILETYPE_FILE,
    }
}

fn filestat(filetype: u8, size: u64, ino: u64) -> [u8; 64] {
    let mut s = [0u8; 64];
    s[8..16].copy_from_slice(&ino.to_le_bytes());
    s[16] = filetype;
    s[24..32].copy_from_slice(&1u64.to_le_bytes());
    s[32..40].copy_from_slice(&size.to_le_bytes());
    s
}

fn preopen_name(w: &WasiState, fd: i32) -> Result<&'static str, Errno> {
    match (fd as u32, w.fd(fd)?) {
        (FD_INPUT, Fd::InputDir) => Ok("/input"),
        (FD_OUTPUT, Fd::OutputDir) => Ok("/output"),
        _ => Err(Errno::Badf),
    }
}

fn seek(w: &mut WasiState, fd: i32, delta: i64, whence: i32) -> Result<u64, Errno> {
    let size = match w.fd(fd)? {
        Fd::Input { name, .. } => w.inputs.get(name).map_or(0, |d| d.len() as u64),
        Fd::Output { name, .. } => w.outputs.get(name).map_or(0, |d| d.len() as u64),
        Fd::InputDir | Fd::OutputDir => return Err(Errno::Isdir),
        _ => return Err(Errno::Spipe),
    };
    let pos = match w.fd_mut(fd)? {
        Fd::Input { pos, .. } | Fd::Output { pos, .. } => pos,
        _ => return Err(Errno::Spipe),
    };
    let base = match whence {
        0 => 0,
        1 => *pos,
        2 => size,
        _ => return Err(Errno::Inval),
    };
    let new = i128::from(base) + i128::from(delta);
    // Positions past 4 GiB can never be written (memory is 32-bit), so refuse them.
    let new = u32::try_from(new).map_err(|_| Errno::Inval)?;
    *pos = u64::from(new);
    Ok(u64::from(new))
}

fn open(
    w: &mut WasiState,
    dirfd: i32,
    p: &str,
    oflags: i32,
    rights: u64,
    fdflags: i32,
) -> Result<u32, Errno> {
    let dir = w.fd(dirfd)?.clone();
    if !matches!(dir, Fd::InputDir | Fd::OutputDir) {
        return Err(Errno::Notdir);
    }
    if p == "." || p.is_empty() {
        if oflags & (OFLAG_CREAT | OFLAG_TRUNC | OFLAG_EXCL) != 0 {
            return Err(Errno::Isdir);
        }
        return w.insert_fd(dir);
    }
    let name = flat_name(p)?;
    if oflags & OFLAG_DIRECTORY != 0 {
        return if w.lookup(&dir, name).is_some() {
            Err(Errno::Notdir)
        } else {
            Err(Errno::Noent)
        };
    }
    let writes = oflags & (OFLAG_CREAT | OFLAG_TRUNC) != 0 || rights & RIGHT_FD_WRITE != 0;
    match dir {
        Fd::InputDir => {
            if writes {
                return Err(Errno::Acces);
            }
            if !w.inputs.contains_key(name) {
                return Err(Errno::Noent);
            }
            w.insert_fd(Fd::Input {
                name: name.to_string(),
                pos: 0,
            })
        }
        _ => {
            if rights & RIGHT_FD_READ != 0 {
                return Err(Errno::Acces);
            }
            let exists = w.outputs.contains_key(name);
            if exists && oflags & OFLAG_CREAT != 0 && oflags & OFLAG_EXCL != 0 {
                return Err(Errno::Exist);
            }
            if !exists {
                if oflags & OFLAG_CREAT == 0 {
                    return Err(Errno::Noent);
                }
                if w.outputs.len() >= w.output_files_cap {
                    return Err(Errno::Nospc);
                }
            }
            if w.fds.len() >= MAX_FDS {
                return Err(Errno::Mfile);
            }
            let file = w.outputs.entry(name.to_string()).or_default();
            if oflags & OFLAG_TRUNC != 0 {
                w.output_bytes -= file.len();
                file.clear();
            }
            w.insert_fd(Fd::Output {
                name: name.to_string(),
                pos: 0,
                append: fdflags & FDFLAG_APPEND != 0,
            })
        }
    }
}
