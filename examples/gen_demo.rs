//! Generates a large, deterministic production database for the demo app
//! (examples/demo/production.sql, a music-practice tracker), for benchmarks:
//!
//!     cargo run --release --example gen_demo -- OUT.sqlite3 [--practice-rows N]
//!
//! N defaults to 5,000,000 practice rows (about 1.2 GB). Users, tunes and
//! playlists scale with N (2,000 users and 20,000 tunes at the default).
//! The schema is exactly the DDL part of production.sql (the text before its
//! `-- DATA --` marker): tables are created first, the rows loaded, then the
//! indexes, views and triggers (the part after `-- INDEXES --`) are created,
//! so the load is fast. The same N always gives the same file contents.
//! The file is written as OUT.tmp and renamed to OUT when complete.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, params};

const PRODUCTION_SQL: &str = include_str!("demo/production.sql");
const DATA_MARKER: &str = "-- DATA --";
const INDEXES_MARKER: &str = "-- INDEXES --";
const DEFAULT_PRACTICE_ROWS: u64 = 5_000_000;
const SEED: u64 = 0x5EED_CAFE_F00D_2026;

/// 2019-01-01 00:00:00 UTC and 2026-03-14 18:30:00 UTC, in Unix seconds.
const HISTORY_START: i64 = 1_546_300_800;
const HISTORY_END: i64 = 1_773_513_000;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen_demo: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<()> {
    let args = parse_args()?;
    let started = Instant::now();
    let (tables_sql, rest_sql) = split_ddl(PRODUCTION_SQL)?;

    let tmp = PathBuf::from(format!("{}.tmp", args.out.display()));
    remove_if_exists(&tmp)?;
    let mut conn =
        Connection::open(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    conn.execute_batch(
        "PRAGMA journal_mode = OFF;
         PRAGMA synchronous = OFF;
         PRAGMA cache_size = -262144;
         PRAGMA temp_store = FILE;",
    )?;
    conn.execute_batch(tables_sql)
        .context("creating the tables")?;

    let scale = Scale::for_practice_rows(args.practice_rows);
    let mut rng = Rng::new(SEED);
    let tx = conn.transaction()?;
    gen_users(&tx, &mut rng, scale.users)?;
    let tunes = gen_tunes(&tx, &mut rng, scale.tunes)?;
    let playlist_tunes = gen_playlists(&tx, &mut rng, scale.users, scale.tunes)?;
    let last_practiced = gen_practice(&tx, &mut rng, &scale, &tunes)?;
    set_last_practiced(&tx, &last_practiced)?;
    tx.commit()?;
    let loaded = started.elapsed();

    conn.execute_batch(rest_sql)
        .context("creating the indexes, views and triggers")?;
    conn.close().map_err(|(_, e)| e)?;
    std::fs::rename(&tmp, &args.out)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), args.out.display()))?;

    let size = std::fs::metadata(&args.out)?.len();
    println!("wrote {}", args.out.display());
    println!(
        "  users {}, tunes {}, playlists {}, playlist_tunes {}, practice {}",
        scale.users,
        scale.tunes,
        scale.users * PLAYLISTS_PER_USER,
        playlist_tunes,
        scale.practice
    );
    println!(
        "  size {:.1} MB ({} bytes); load {:.1}s, total {:.1}s",
        size as f64 / 1e6,
        size,
        loaded.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

struct Args {
    out: PathBuf,
    practice_rows: u64,
}

const USAGE: &str = "usage: gen_demo OUT.sqlite3 [--practice-rows N]   (default N = 5000000)";

fn parse_args() -> Result<Args> {
    let mut out = None;
    let mut practice_rows = DEFAULT_PRACTICE_ROWS;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--practice-rows" => {
                let v = it.next().context("--practice-rows needs a value")?;
                practice_rows = parse_count(&v)?;
            }
            s if s.starts_with("--practice-rows=") => {
                practice_rows = parse_count(&s["--practice-rows=".len()..])?;
            }
            s if s.starts_with('-') => bail!("unknown option {s}\n{USAGE}"),
            s if out.is_none() => out = Some(PathBuf::from(s)),
            s => bail!("unexpected argument {s}\n{USAGE}"),
        }
    }
    let Some(out) = out else { bail!("{USAGE}") };
    if out.exists() {
        bail!("{} already exists; remove it first", out.display());
    }
    Ok(Args { out, practice_rows })
}

fn parse_count(s: &str) -> Result<u64> {
    let n: u64 = s
        .replace('_', "")
        .parse()
        .with_context(|| format!("not a row count: {s}"))?;
    if n == 0 {
        bail!("--practice-rows must be at least 1");
    }
    Ok(n)
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Splits production.sql into (CREATE TABLEs, indexes + views + triggers).
fn split_ddl(sql: &str) -> Result<(&str, &str)> {
    let ddl = marker_split(sql, DATA_MARKER)
        .context("production.sql has no `-- DATA --` line")?
        .0;
    marker_split(ddl, INDEXES_MARKER).context("production.sql has no `-- INDEXES --` line")
}

fn marker_split<'a>(sql: &'a str, marker: &str) -> Option<(&'a str, &'a str)> {
    let mut pos = 0;
    for line in sql.split_inclusive('\n') {
        if line.trim_end() == marker {
            return Some((&sql[..pos], &sql[pos + line.len()..]));
        }
        pos += line.len();
    }
    None
}

// ---------------------------------------------------------------- sizes

const PLAYLISTS_PER_USER: u64 = 3;

struct Scale {
    users: u64,
    tunes: u64,
    practice: u64,
}

impl Scale {
    fn for_practice_rows(practice: u64) -> Self {
        Scale {
            users: (practice / 2_500).max(5),
            tunes: (practice / 250).max(30),
            practice,
        }
    }
}

// ---------------------------------------------------------------- PRNG

/// xorshift64* — small, fast and good enough for test data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in 0..n (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() >> 32) * n) >> 32
    }

    fn range(&mut self, lo: u64, hi_inclusive: u64) -> u64 {
        lo + self.below(hi_inclusive - lo + 1)
    }

    /// True with probability pct / 100.
    fn percent(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

// ---------------------------------------------------------------- dates

/// Formats Unix seconds as 'YYYY-MM-DD HH:MM:SS' into `buf`.
fn format_ts(buf: &mut String, secs: i64) {
    use std::fmt::Write;
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    buf.clear();
    let _ = write!(
        buf,
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        tod / 3600,
        tod / 60 % 60,
        tod % 60
    );
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

// ---------------------------------------------------------------- users

const FIRST_NAMES: &[&str] = &[
    "Aoife", "Ciarán", "Siobhán", "Marcus", "Dave", "Jun", "Niamh", "Seán", "Maeve", "Liam",
    "Chloé", "Oisín", "Grace", "Tomás", "Ella", "Yusuf", "Ingrid", "Pádraig", "Rosa", "Kenji",
    "Mary", "John", "Bríd", "Ahmed", "Sofia", "Declan", "Fiona", "Mateo", "Orla", "Ravi",
];
const LAST_NAMES: &[&str] = &[
    "Byrne",
    "Lee",
    "Ó Súilleabháin",
    "Kowalski",
    "Tanaka",
    "Murphy",
    "Kelly",
    "O'Brien",
    "Walsh",
    "Ní Bhriain",
    "Smith",
    "García",
    "Nguyen",
    "Doyle",
    "McCarthy",
    "Schmidt",
    "Rossi",
    "Okafor",
    "Brennan",
    "Lynch",
    "Haddad",
    "Fitzgerald",
    "Silva",
    "Dubois",
];
const INSTRUMENTS: &[&str] = &[
    "fiddle",
    "tin whistle",
    "flute",
    "concertina",
    "uilleann pipes",
    "banjo",
    "bodhrán",
    "button accordion",
    "tenor sax",
    "alto sax",
    "trumpet",
    "piano",
    "guitar",
    "double bass",
    "drums",
    "trombone",
    "clarinet",
    "mandolin",
    "harp",
    "vibraphone",
];

fn ascii_slug(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            'á' => Some('a'),
            'é' => Some('e'),
            'í' => Some('i'),
            'ó' | 'Ó' => Some('o'),
            'ú' => Some('u'),
            c if c.is_ascii_alphabetic() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

fn gen_users(conn: &Connection, rng: &mut Rng, n: u64) -> Result<()> {
    let mut stmt = conn.prepare(
        "INSERT INTO users (id, email, display_name, instrument, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut ts = String::new();
    for id in 1..=n {
        let first = *rng.pick(FIRST_NAMES);
        let last = *rng.pick(LAST_NAMES);
        let email = format!("{}.{}{id}@example.com", ascii_slug(first), ascii_slug(last));
        let name = format!("{first} {last}");
        let instrument = if rng.percent(10) {
            None
        } else {
            Some(*rng.pick(INSTRUMENTS))
        };
        // Accounts created in the two years before the practice history starts,
        // or during it.
        let created = HISTORY_START - 2 * 365 * 86_400
            + rng.below((HISTORY_END - HISTORY_START) as u64 / 2) as i64;
        format_ts(&mut ts, created);
        stmt.execute(params![id as i64, email, name, instrument, ts])?;
    }
    Ok(())
}

// ---------------------------------------------------------------- tunes

const IRISH_TYPES: &[(&str, u64, u64)] = &[
    ("reel", 80, 118),
    ("reel", 80, 118),
    ("reel", 80, 118),
    ("jig", 90, 124),
    ("jig", 90, 124),
    ("slip jig", 100, 126),
    ("hornpipe", 60, 84),
    ("polka", 110, 140),
    ("slide", 110, 136),
    ("air", 50, 66),
];
const JAZZ_TYPES: &[(&str, u64, u64)] = &[
    ("standard", 100, 200),
    ("standard", 100, 200),
    ("ballad", 52, 72),
    ("bebop", 180, 290),
    ("bossa nova", 120, 150),
    ("swing", 150, 190),
    ("modal", 120, 160),
    ("blues", 90, 180),
];
const IRISH_NOUNS: &[&str] = &[
    "Kesh",
    "Silver Spear",
    "Banshee",
    "Butterfly",
    "Mason's Apron",
    "Maid Behind the Bar",
    "Lark",
    "Blackbird",
    "Wind",
    "Merry Blacksmith",
    "Drunken Landlady",
    "Bucks",
    "Piper",
    "Fiddler",
    "Hare",
    "Fox",
    "Rambler",
    "Sailor",
    "Cuckoo",
    "Ship",
    "Flax",
    "Heather",
    "Morning Star",
    "Kilfenora",
    "Galway Bay",
    "Connaught Man",
    "Woman of the House",
];
const IRISH_PLACES: &[&str] = &[
    "Tulla",
    "Ennis",
    "Kilrush",
    "Ballyvourney",
    "Sligo",
    "Donegal",
    "Knocknagree",
    "Castlebar",
    "Glenbeigh",
    "Tralee",
    "Westport",
    "Lisdoonvarna",
    "Ballinasloe",
    "Athlone",
    "Clonmel",
];
const IRISH_PEOPLE: &[&str] = &[
    "Morrison",
    "Cooley",
    "Paddy Fahey",
    "Tommy Peoples",
    "Martin Wynne",
    "Julia Delaney",
    "Mrs. Crotty",
    "Jackie Coleman",
    "Maggie",
    "Dowd",
    "O'Rourke",
    "Mick O'Connor",
];
const JAZZ_ADJ: &[&str] = &[
    "Blue", "Midnight", "Autumn", "Lazy", "Sweet", "Lonely", "Golden", "Smoky", "Crazy", "Gentle",
    "Velvet", "Late", "Giant", "Solar", "Silent", "Tender",
];
const JAZZ_NOUNS: &[&str] = &[
    "Bossa", "Steps", "Moon", "Leaves", "Serenade", "Train", "Waltz", "Rain", "Shuffle", "Nights",
    "Groove", "Dreams", "Heart", "Cadillac", "Monday", "Avenue", "Caravan",
];
const JAZZ_COMPOSERS: &[&str] = &[
    "Thelonious Monk",
    "Miles Davis",
    "John Coltrane",
    "Wayne Shorter",
    "Charlie Parker",
    "Duke Ellington",
    "Billy Strayhorn",
    "Cole Porter",
    "Jerome Kern",
    "Richard Rodgers",
    "Antônio Carlos Jobim",
    "Horace Silver",
    "Benny Golson",
    "Bill Evans",
    "Kenny Dorham",
];
const IRISH_COMPOSERS: &[&str] = &[
    "Turlough O'Carolan",
    "Paddy Fahey",
    "Ed Reavy",
    "Josie McDermott",
    "Brendan Tonra",
    "Finbarr Dwyer",
    "Charlie Lennon",
    "Paddy O'Brien",
];
const KEYS: &[&str] = &[
    "D", "G", "A", "Edor", "Ador", "Emin", "Bmin", "C", "F", "Bb", "Eb", "Ab", "Cmin", "Gmin",
    "Dmin", "Fmin", "Db",
];

/// Tempo range (lo, hi) for each tune, by tune id - 1.
type TuneTempos = Vec<(u64, u64)>;

fn gen_tunes(conn: &Connection, rng: &mut Rng, n: u64) -> Result<TuneTempos> {
    let mut stmt = conn.prepare(
        "INSERT INTO tunes (id, title, composer, genre, tune_type, key_sig, added_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut tempos = Vec::with_capacity(n as usize);
    let mut ts = String::new();
    for id in 1..=n {
        let irish = rng.percent(60);
        let (genre, (kind, lo, hi)) = if irish {
            ("irish", *rng.pick(IRISH_TYPES))
        } else {
            ("jazz", *rng.pick(JAZZ_TYPES))
        };
        let title = if irish {
            match rng.below(4) {
                0 => format!("The {}", rng.pick(IRISH_NOUNS)),
                1 => format!("The Humours of {}", rng.pick(IRISH_PLACES)),
                2 => format!("{}'s {}", rng.pick(IRISH_PEOPLE), capitalise(kind)),
                _ => format!(
                    "The {} of {}",
                    rng.pick(IRISH_NOUNS),
                    rng.pick(IRISH_PLACES)
                ),
            }
        } else {
            match rng.below(3) {
                0 => format!("{} {}", rng.pick(JAZZ_ADJ), rng.pick(JAZZ_NOUNS)),
                1 => format!("'Round {}", rng.pick(JAZZ_NOUNS)),
                _ => format!("{} {} Blues", rng.pick(JAZZ_ADJ), rng.pick(JAZZ_NOUNS)),
            }
        };
        let composer = match (irish, rng.percent(70)) {
            (true, true) => None, // traditional
            (true, false) => Some(*rng.pick(IRISH_COMPOSERS)),
            (false, _) => Some(*rng.pick(JAZZ_COMPOSERS)),
        };
        let key = if rng.percent(5) {
            None
        } else {
            Some(*rng.pick(KEYS))
        };
        let added = HISTORY_START - 365 * 86_400
            + rng.below((HISTORY_END - HISTORY_START) as u64 / 2) as i64;
        format_ts(&mut ts, added);
        stmt.execute(params![id as i64, title, composer, genre, kind, key, ts])?;
        tempos.push((lo, hi));
    }
    Ok(tempos)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

// ---------------------------------------------------------------- playlists

const PLAYLIST_NAMES: &[&str] = &[
    "Thursday session set",
    "Standards to memorise",
    "Slow session",
    "Warm-up",
    "Gig list",
    "Jigs in D",
    "Ballads",
    "Learning queue",
    "Festival set",
    "Exam pieces",
];

fn gen_playlists(conn: &Connection, rng: &mut Rng, users: u64, tunes: u64) -> Result<u64> {
    let mut pl = conn
        .prepare("INSERT INTO playlists (id, user_id, name, created_at) VALUES (?1, ?2, ?3, ?4)")?;
    let mut pt = conn.prepare(
        "INSERT INTO playlist_tunes (playlist_id, tune_id, position) VALUES (?1, ?2, ?3)",
    )?;
    let mut ts = String::new();
    let mut links = 0;
    let mut chosen: Vec<u64> = Vec::new();
    for user in 1..=users {
        for k in 0..PLAYLISTS_PER_USER {
            let id = (user - 1) * PLAYLISTS_PER_USER + k + 1;
            format_ts(
                &mut ts,
                HISTORY_START + rng.below((HISTORY_END - HISTORY_START) as u64) as i64,
            );
            pl.execute(params![
                id as i64,
                user as i64,
                *rng.pick(PLAYLIST_NAMES),
                ts
            ])?;
            let len = rng.range(5, 25).min(tunes);
            chosen.clear();
            while (chosen.len() as u64) < len {
                let t = rng.below(tunes) + 1;
                if !chosen.contains(&t) {
                    chosen.push(t);
                }
            }
            for (pos, t) in chosen.iter().enumerate() {
                pt.execute(params![id as i64, *t as i64, pos as i64 + 1])?;
            }
            links += len;
        }
    }
    Ok(links)
}

// ---------------------------------------------------------------- practice

const MINUTES: &[u64] = &[5, 10, 10, 15, 15, 20, 20, 25, 30, 30, 40, 45, 60, 90];
const NOTE_PHRASES: &[&str] = &[
    "B part still shaky",
    "ran it with the metronome",
    "ornaments in bar 3 finally clean",
    "played along with the recording",
    "slow practice, hands only",
    "learned the turn",
    "memorised the head",
    "comped through the changes twice",
    "worked on the bridge",
    "couldn't get the rolls even",
    "session tomorrow, ran the set",
    "transposed to Bb",
    "tone felt thin today",
    "good one!",
    "tired, short run-through",
    "two-feel then swing",
    "tricky triplets at the end of the A part",
    "don't rush the last bar",
    "sight-read a new setting",
    "improvised 4 choruses over the changes, tried some tritone subs in the turnaround",
    "recorded myself, intonation off on the high B",
    "setting from the Thursday session",
    "lovely lift at this tempo",
    "cuts > rolls for now",
    "bowing pattern from the Tommy Peoples recording: slur into the second beat, \
     keep the pulse light, don't lean on the downbeat",
    "worked the bridge in all twelve keys; Db and F# are still slow",
    "long tones first, then the tune at half speed, then up to tempo with the drone",
];

fn gen_practice(
    conn: &Connection,
    rng: &mut Rng,
    scale: &Scale,
    tunes: &TuneTempos,
) -> Result<Vec<i64>> {
    let mut stmt = conn.prepare(
        "INSERT INTO practice (id, user_id, tune_id, practiced, minutes, tempo, notes, rating)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let n = scale.practice;
    let span = (HISTORY_END - HISTORY_START) as u64;
    let step = (span / n).max(1);
    let mut last = vec![0i64; scale.tunes as usize];
    let mut ts = String::new();
    let mut notes_buf = String::new();
    let mut tempo_buf = String::new();
    for id in 1..=n {
        // Chronological: id order is time order, the last row ends the history.
        let secs = if id == n {
            HISTORY_END
        } else {
            HISTORY_START
                + ((span as u128 * (id - 1) as u128) / n as u128) as i64
                + rng.below(step) as i64
        };
        format_ts(&mut ts, secs);
        // Some users practise much more than others, some tunes are much more
        // popular: the minimum of two uniform draws skews towards low ids.
        let user = rng.below(scale.users).min(rng.below(scale.users)) + 1;
        let tune = rng.below(scale.tunes).min(rng.below(scale.tunes)) + 1;
        let (lo, hi) = tunes[(tune - 1) as usize];
        last[(tune - 1) as usize] = secs;
        let minutes = *rng.pick(MINUTES);
        let tempo = if rng.percent(8) {
            None
        } else {
            use std::fmt::Write;
            tempo_buf.clear();
            let _ = write!(tempo_buf, "{}", rng.range(lo, hi));
            Some(tempo_buf.as_str())
        };
        let notes = if rng.percent(30) {
            None
        } else {
            // Half the notes are a quick remark, half a longer practice log.
            let phrases = if rng.percent(50) {
                rng.range(1, 3)
            } else {
                rng.range(4, 15)
            };
            notes_buf.clear();
            let mut prev = usize::MAX;
            for i in 0..phrases {
                let mut k = rng.below(NOTE_PHRASES.len() as u64) as usize;
                if k == prev {
                    k = (k + 1) % NOTE_PHRASES.len();
                }
                prev = k;
                if i > 0 {
                    notes_buf.push_str("; ");
                }
                notes_buf.push_str(NOTE_PHRASES[k]);
            }
            Some(notes_buf.as_str())
        };
        let rating = if rng.percent(15) {
            None
        } else {
            Some(rng.range(1, 5))
        };
        stmt.execute(params![
            id as i64,
            user as i64,
            tune as i64,
            ts,
            minutes as i64,
            tempo,
            notes,
            rating.map(|r| r as i64)
        ])?;
    }
    Ok(last)
}

/// What the practice_bump_tune trigger would have done had it existed during the load.
fn set_last_practiced(conn: &Connection, last: &[i64]) -> Result<()> {
    let mut stmt = conn.prepare("UPDATE tunes SET last_practiced = ?1 WHERE id = ?2")?;
    let mut ts = String::new();
    for (i, &secs) in last.iter().enumerate() {
        if secs != 0 {
            format_ts(&mut ts, secs);
            stmt.execute(params![ts, i as i64 + 1])?;
        }
    }
    Ok(())
}
