//! Memory per live session in the `MemoryStore`: heap bytes counted by a
//! global allocator, and the process's resident memory with 1 000 000
//! sessions.
//!
//! ```text
//! cargo bench --bench memory                 # 1 000 000 sessions
//! cargo bench --bench memory -- 100000       # another count
//! ```
//!
//! Each session is created the way a login creates it (short user id, no
//! context), then used twice: the first request only marks token 0 in use,
//! the second retires it, so the session holds a retired-token timestamp as
//! it does in steady state. "Beyond the user's own data" subtracts the user
//! id's bytes (kept once, in the record: the user index holds a hash), the
//! only user data these sessions hold.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

use rolling_session::{KeyRing, MemoryStore, SessionContext, SessionManager, TokenKey};

/// Counts live heap bytes (as requested) and live allocations.
struct Counting;

static BYTES: AtomicIsize = AtomicIsize::new(0);
static BLOCKS: AtomicIsize = AtomicIsize::new(0);
static CALLS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to the system allocator unchanged; the
// counters are only statistics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        BLOCKS.fetch_add(1, Ordering::Relaxed);
        CALLS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        BLOCKS.fetch_add(1, Ordering::Relaxed);
        CALLS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        BLOCKS.fetch_sub(1, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        CALLS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn heap() -> (isize, isize) {
    (
        BYTES.load(Ordering::Relaxed),
        BLOCKS.load(Ordering::Relaxed),
    )
}

/// Resident set size of this process, bytes (Linux; 0 elsewhere).
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

fn main() {
    // `cargo bench` passes `--bench`; a bare number sets the session count.
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let manager = SessionManager::builder(KeyRing::new(TokenKey::new(
        1,
        b"0123456789abcdefghijklmnopqrstuv",
    )))
    .store(MemoryStore::new())
    .build()
    .unwrap();
    let users: Vec<String> = (0..n).map(|i| format!("user-{i:07}")).collect();
    let user_bytes: usize = users.iter().map(String::len).sum();
    let mut tokens = Vec::with_capacity(n);

    let (bytes0, blocks0) = heap();
    let rss0 = rss();
    let calls0 = CALLS.load(Ordering::Relaxed);
    rt.block_on(async {
        for user in &users {
            let s = manager
                .create_session(user.as_str(), SessionContext::default())
                .await
                .unwrap();
            tokens.push(s.token);
        }
    });
    let calls_create = CALLS.load(Ordering::Relaxed) - calls0;
    let (bytes1, blocks1) = heap();
    let rss1 = rss();
    // The tokens are the clients' and live in this bench only. Their
    // vector was allocated before the first count; what each token holds
    // on the heap (nothing for a minted token, held inline) is measured on
    // a thousand more, so the figures stay right whatever a `Token` is.
    let per_token_heap = {
        let keys = KeyRing::new(TokenKey::new(2, b"another 32-byte key for a probe."));
        let mut probe = Vec::with_capacity(1000);
        let (before, blocks_before) = heap();
        for i in 0..1000u64 {
            probe.push(keys.mint(&rolling_session::store::SessionId::generate(), i));
        }
        let (after, blocks_after) = heap();
        (
            (after - before) as f64 / 1000.0,
            (blocks_after - blocks_before) as f64 / 1000.0,
        )
    };
    let token_heap = (per_token_heap.0 * n as f64) as isize;
    let tokens_blocks = (per_token_heap.1 * n as f64) as isize;

    // Two requests each: the second retires token 0, and the steady state
    // holds a retired-token timestamp.
    let request_all = |tokens: &mut Vec<rolling_session::token::Token>| {
        rt.block_on(async {
            for t in tokens.iter_mut() {
                let v = manager.validate_session(t.expose()).await.unwrap();
                *t = v.next_token.unwrap();
            }
        })
    };
    request_all(&mut tokens);
    let (bytes_one, blocks_one) = heap();
    let calls1 = CALLS.load(Ordering::Relaxed);
    request_all(&mut tokens);
    let calls_validate = CALLS.load(Ordering::Relaxed) - calls1;
    let (bytes2, blocks2) = heap();
    let rss2 = rss();

    let per = |b: isize| b as f64 / n as f64;
    let store_created = bytes1 - bytes0 - token_heap;
    let store_used = bytes2 - bytes0 - token_heap;
    let own = user_bytes as f64 / n as f64;
    println!("sessions                          {n}");
    println!(
        "size_of::<SessionRecord>()        {} bytes",
        std::mem::size_of::<rolling_session::store::SessionRecord>()
    );
    println!(
        "heap per session after create     {:.1} bytes in {:.2} blocks",
        per(store_created),
        per(blocks1 - blocks0 - tokens_blocks)
    );
    println!(
        "heap per session after 1 request  {:.1} bytes in {:.2} blocks",
        per(bytes_one - bytes0 - token_heap),
        per(blocks_one - blocks0 - tokens_blocks)
    );
    println!(
        "heap per session after 2 requests {:.1} bytes in {:.2} blocks",
        per(store_used),
        per(blocks2 - blocks0 - tokens_blocks)
    );
    println!("  of which the user's own data    {own:.1} bytes (user id)");
    println!(
        "  beyond the user's own data      {:.1} bytes",
        per(store_used) - own
    );
    println!(
        "allocations per create_session    {:.2}",
        calls_create as f64 / n as f64
    );
    println!(
        "allocations per validate_session  {:.2}",
        calls_validate as f64 / n as f64
    );
    println!(
        "RSS before / after create / after 2 requests  {:.1} / {:.1} / {:.1} MiB",
        rss0 as f64 / 1048576.0,
        rss1 as f64 / 1048576.0,
        rss2 as f64 / 1048576.0
    );
    println!(
        "RSS growth per session (incl. the bench's own tokens, {} bytes each, {:.0} on the heap)  {:.1} bytes",
        std::mem::size_of::<rolling_session::token::Token>(),
        per(token_heap),
        (rss2 - rss0) as f64 / n as f64
    );
    println!(
        "RSS with {n} sessions, whole process             {:.1} MiB",
        rss2 as f64 / 1048576.0
    );
    drop(tokens);
    drop(manager);
}
