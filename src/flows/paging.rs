//! Exact paging over Drupal's JSON:API collections, which are paged by offset and carry no
//! count. One implementation serves Users, Groups and root `/.search`.
//!
//! A read of `limit` items at `offset` tells a lot about the total N: with a `next` link,
//! N > offset + limit; without one, N = offset + len when it returned anything, and
//! N ≤ offset when it came back empty. So the window's own pages often settle N (the first
//! page is read alone: most directories fit in it; the rest of the window follows, 8 pages at
//! a time). Otherwise a few rounds of concurrent probes (cheap reads of ids only) close in on
//! it: first galloping outwards, then cutting the bracket, until one probe lands on the last
//! page. A total remembered from an earlier request on the same query is checked with one
//! probe at its end, alongside the rest of the window: all that paging on through a list
//! costs. The list may change between rounds (see `Pager`).

/// Drupal's JSON:API page size cap (`page[limit]` above it is cut to 50).
pub const PAGE: usize = 50;
/// Probes sent at once in one round (bounded parallelism towards Drupal).
const PROBES_PER_ROUND: usize = 8;
/// Each galloping probe reaches this many times further than the one before it.
const GALLOP: usize = 4;
/// Rounds of probes at most: 16 rounds of 8 reach past any real directory.
const MAX_ROUNDS: usize = 16;
/// The window's pages read at once (one list page of `count` = 1000 is 20 Drupal pages).
const WINDOW_PER_ROUND: usize = 8;

/// One read of a list: `limit` items from `offset` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    pub offset: usize,
    pub limit: usize,
    /// A page of the window (its items are the answer), or a probe (ids only).
    pub window: bool,
}

/// What a read found: how many items came back, and whether Drupal linked a next page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub len: usize,
    pub has_next: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PagerRound {
    /// Send these reads.
    Read(Vec<Read>),
    /// The exact number of results.
    Total(usize),
    /// No answer within `MAX_ROUNDS` (the list changed under the probes all along).
    GaveUp,
}

/// Counts the results of one query while its window is read.
///
/// The list may change between rounds (an IdP deletes while it pages). Each round's reads are
/// taken together: what they say of N is merged with what earlier rounds said, and where the
/// two disagree the newer round wins and the older bounds are dropped. A total is only ever
/// what one round's reads prove on their own, so it is exact whenever the list held still
/// during that round.
#[derive(Debug, Clone)]
pub struct Pager {
    /// The window: `count` items from `offset`.
    offset: usize,
    count: usize,
    /// N ≥ at_least.
    at_least: usize,
    /// N ≤ at_most, once known.
    at_most: Option<usize>,
    /// N as the latest round that proved it found it.
    total: Option<usize>,
    /// Rounds of probes so far.
    rounds: usize,
    /// The window's pages sent so far (the first goes alone, the others at most
    /// `WINDOW_PER_ROUND` at a time).
    window_sent: usize,
    /// A total remembered for this query, not yet checked.
    hint: Option<usize>,
}

/// What one round's reads prove about N: N ≥ `at_least`, N ≤ `at_most`.
struct Bounds {
    at_least: usize,
    at_most: Option<usize>,
}

impl Bounds {
    fn of(round: &[(Read, Found)]) -> Self {
        let mut b = Bounds {
            at_least: 0,
            at_most: None,
        };
        for (read, found) in round {
            let end = read.offset.saturating_add(found.len);
            if found.len > 0 {
                b.at_least = b.at_least.max(end);
            }
            if found.has_next {
                b.at_least = b
                    .at_least
                    .max(read.offset.saturating_add(read.limit).saturating_add(1));
            } else if found.len > 0 || read.offset == 0 {
                b.cap(end);
            } else {
                b.cap(read.offset);
            }
        }
        b
    }

    fn cap(&mut self, most: usize) {
        self.at_most = Some(self.at_most.map_or(most, |m| m.min(most)));
    }

    fn holds(&self) -> bool {
        self.at_most.is_none_or(|m| self.at_least <= m)
    }

    fn exact(&self) -> Option<usize> {
        self.at_most.filter(|m| *m == self.at_least)
    }
}

impl Pager {
    /// The first round: the window's first page (most directories fit in it). With
    /// `count` = 0 there is no window: the `hint` (a total remembered for this query) is
    /// checked, or the first probe goes out.
    pub fn start(offset: usize, count: usize, hint: Option<usize>) -> (Self, Vec<Read>) {
        let mut pager = Pager {
            offset,
            count,
            at_least: 0,
            at_most: None,
            total: None,
            rounds: 0,
            window_sent: 0,
            hint,
        };
        let mut reads: Vec<Read> = pager.window().into_iter().take(1).collect();
        pager.window_sent = reads.len();
        if reads.is_empty() {
            reads.push(pager.take_hint_check().unwrap_or(probe(0)));
        }
        (pager, reads)
    }

    /// The read that checks the remembered total: its last item, and whether anything
    /// follows it. Not worth a call where what is known already rules it out.
    fn take_hint_check(&mut self) -> Option<Read> {
        let n = self.hint.take().filter(|n| *n > self.at_least)?;
        if self.at_most.is_some_and(|m| n > m) {
            return None;
        }
        Some(Read {
            offset: n.saturating_sub(1),
            limit: 2,
            window: false,
        })
    }

    /// The window's reads, one per Drupal page. Each reads a whole page even where the
    /// window ends sooner (the caller keeps `count` items): a short page then tells the total.
    fn window(&self) -> Vec<Read> {
        let mut reads = Vec::new();
        let mut skip = 0;
        while skip < self.count {
            reads.push(Read {
                offset: self.offset.saturating_add(skip),
                limit: PAGE,
                window: true,
            });
            skip = skip.saturating_add(PAGE);
        }
        reads
    }

    /// Takes what a round of reads found and says what to read next, or the total.
    pub fn learn(&mut self, round: &[(Read, Found)]) -> PagerRound {
        crate::runtime::tally::note(crate::runtime::tally::Event::PagerRound);
        self.merge(Bounds::of(round));
        // The rest of the window, where results exist (or may), a few pages a round; with
        // the first of them the check of a remembered total if the count is still open.
        let first_rest = self.window_sent == 1;
        let mut rest: Vec<Read> = self
            .window()
            .into_iter()
            .skip(self.window_sent)
            .filter(|r| self.at_most.unwrap_or(usize::MAX) > r.offset)
            .take(WINDOW_PER_ROUND)
            .collect();
        if let Some(last) = rest.last() {
            let sent = self
                .window()
                .iter()
                .take_while(|r| r.offset <= last.offset)
                .count();
            self.window_sent = sent;
        } else {
            self.window_sent = usize::MAX;
        }
        if first_rest && self.total.is_none() {
            rest.extend(self.take_hint_check());
        }
        if !rest.is_empty() {
            return PagerRound::Read(rest);
        }
        if let Some(total) = self.total {
            return PagerRound::Total(total);
        }
        self.rounds = self.rounds.saturating_add(1);
        if self.rounds > MAX_ROUNDS {
            crate::runtime::tally::note(crate::runtime::tally::Event::PagerGaveUp);
            return PagerRound::GaveUp;
        }
        PagerRound::Read(self.probes())
    }

    /// Adds what a round proved to what earlier rounds did; the newer round wins where they
    /// disagree (the list changed in between).
    fn merge(&mut self, round: Bounds) {
        if !round.holds() {
            // The list changed during the round itself: start over.
            self.at_least = 0;
            self.at_most = None;
            self.total = None;
            return;
        }
        let at_least = self.at_least.max(round.at_least);
        let at_most = match (self.at_most, round.at_most) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if at_most.is_some_and(|m| m < at_least) {
            self.at_least = round.at_least;
            self.at_most = round.at_most;
        } else {
            self.at_least = at_least;
            self.at_most = at_most;
        }
        self.total = round
            .exact()
            .or(self.total)
            .filter(|n| *n >= self.at_least && self.at_most.is_none_or(|m| *n <= m));
    }

    /// The next round's probes: each reads one page of ids at an offset that cuts the
    /// remaining range.
    fn probes(&self) -> Vec<Read> {
        // A probe at `k` settles N when k < N ≤ k + PAGE.
        let first = self.at_least.saturating_sub(1);
        match self.at_most {
            None => {
                let mut reach = PAGE;
                (0..PROBES_PER_ROUND)
                    .map(|_| {
                        let at = first.saturating_add(reach.saturating_sub(PAGE));
                        reach = reach.saturating_mul(GALLOP);
                        probe(at)
                    })
                    .collect()
            }
            Some(most) => {
                let width = most.saturating_sub(first);
                if width <= PAGE {
                    return vec![probe(first)];
                }
                let slots = PROBES_PER_ROUND.min(width.div_ceil(PAGE)).saturating_add(1);
                let step = width.div_ceil(slots).max(1);
                (0..slots.saturating_sub(1))
                    .map(|j| probe(first.saturating_add(step.saturating_mul(j))))
                    .collect()
            }
        }
    }
}

fn probe(offset: usize) -> Read {
    Read {
        offset,
        limit: PAGE,
        window: false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::arithmetic_side_effects)]
    use super::*;

    /// Answers reads as Drupal would for a list of `n` results.
    fn drupal(n: usize, read: &Read) -> Found {
        let len = n.saturating_sub(read.offset).min(read.limit);
        Found {
            len,
            has_next: n > read.offset + read.limit,
        }
    }

    /// Runs a pager against a list of `n`; returns (total, reads sent, rounds).
    fn run(n: usize, offset: usize, count: usize, hint: Option<usize>) -> (usize, usize, usize) {
        let (mut pager, mut reads) = Pager::start(offset, count, hint);
        let mut sent = 0;
        for round in 1.. {
            assert!(reads.len() <= PROBES_PER_ROUND.max(WINDOW_PER_ROUND + 1));
            sent += reads.len();
            let found: Vec<(Read, Found)> = reads.iter().map(|r| (*r, drupal(n, r))).collect();
            match pager.learn(&found) {
                PagerRound::Total(t) => return (t, sent, round),
                PagerRound::Read(p) => reads = p,
                PagerRound::GaveUp => panic!("gave up on {n}"),
            }
        }
        unreachable!()
    }

    #[test]
    fn every_total_is_found_exactly_for_every_window() {
        for n in (0..400).chain([999, 1000, 1001, 10_000, 100_000, 1_000_000]) {
            for (offset, count) in [
                (0, 0),
                (0, 1),
                (0, 37),
                (0, 50),
                (36, 37),
                (100, 100),
                (129, 50),
                (5000, 10),
            ] {
                let (total, _, _) = run(n, offset, count, None);
                assert_eq!(total, n, "n={n} offset={offset} count={count}");
            }
        }
    }

    #[test]
    fn a_window_that_reaches_the_end_needs_no_probe() {
        assert_eq!(run(130, 100, 50, None), (130, 1, 1));
        // The first page is alone: it often settles everything.
        assert_eq!(run(30, 0, 100, None), (30, 1, 1));
        assert_eq!(run(131, 10, 120, None), (131, 3, 2));
        // JumpCloud's Test Connection (count=1) on a small directory: one read.
        assert_eq!(run(30, 0, 1, None), (30, 1, 1));
    }

    #[test]
    fn a_remembered_total_costs_one_read() {
        // Paging on through 130: the hint is checked once the first page shows more.
        assert_eq!(run(130, 50, 37, Some(130)), (130, 2, 2));
        assert_eq!(run(1000, 100, 100, Some(1000)), (1000, 3, 2));
        // A first page that reaches the end needs no check.
        assert_eq!(run(30, 0, 1, Some(130)), (30, 1, 1));
        // A stale hint still ends exact.
        assert_eq!(run(131, 50, 37, Some(130)).0, 131);
        assert_eq!(run(120, 0, 0, Some(130)).0, 120);
        assert_eq!(run(130, 0, 0, Some(130)), (130, 1, 1));
    }

    #[test]
    fn probing_is_bounded() {
        for (n, most_reads) in [(1_000, 30), (10_000, 40), (100_000, 50)] {
            let (total, sent, rounds) = run(n, 0, 1, None);
            assert_eq!(total, n);
            assert!(sent <= most_reads, "n={n}: {sent} reads in {rounds} rounds");
            println!("n={n}: {sent} reads in {rounds} rounds");
        }
    }

    #[test]
    fn the_first_page_goes_alone_then_the_rest_of_the_window_with_the_hint_check() {
        let read = |offset, limit, window| Read {
            offset,
            limit,
            window,
        };
        let found = |len, has_next| Found { len, has_next };
        let (mut pager, reads) = Pager::start(100, 60, Some(5000));
        assert_eq!(reads, vec![read(100, 50, true)]);
        let next = pager.learn(&[(reads[0], found(50, true))]);
        let rest = vec![read(150, 50, true), read(4999, 2, false)];
        assert_eq!(next, PagerRound::Read(rest.clone()));
        let next = pager.learn(&[(rest[0], found(50, true)), (rest[1], found(1, false))]);
        assert_eq!(next, PagerRound::Total(5000));
    }

    /// A seeded generator (no extra crate): xorshift.
    struct Seeded(u64);

    impl Seeded {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n.max(1) as u64) as usize
        }
    }

    /// What a run against a changing list came to.
    struct Outcome {
        answer: PagerRound,
        reads: usize,
        window_reads: usize,
        probe_rounds: usize,
        widest_round: usize,
    }

    /// Runs a pager against a list whose size changes before each round by `changes`
    /// (round 2 is the first after the first page), then holds still.
    fn run_changing(n: usize, offset: usize, count: usize, changes: &[isize]) -> (Outcome, usize) {
        let (mut pager, mut reads) = Pager::start(offset, count, None);
        let mut n = n;
        let mut out = Outcome {
            answer: PagerRound::GaveUp,
            reads: 0,
            window_reads: 0,
            probe_rounds: 0,
            widest_round: 0,
        };
        for round in 0.. {
            if round > 0 {
                if let Some(d) = changes.get(round - 1) {
                    n = n.saturating_add_signed(*d);
                }
            }
            out.reads += reads.len();
            out.window_reads += reads.iter().filter(|r| r.window).count();
            out.probe_rounds += usize::from(reads.iter().all(|r| !r.window));
            out.widest_round = out.widest_round.max(reads.len());
            let found: Vec<(Read, Found)> = reads.iter().map(|r| (*r, drupal(n, r))).collect();
            match pager.learn(&found) {
                PagerRound::Read(next) => reads = next,
                answer => {
                    out.answer = answer;
                    return (out, n);
                }
            }
        }
        unreachable!()
    }

    #[test]
    fn a_list_that_shrinks_after_the_first_page_converges() {
        // The reported case: 101 users, startIndex=51&count=50, one DELETE before the probes.
        let (out, n) = run_changing(101, 50, 50, &[-1]);
        assert_eq!(out.answer, PagerRound::Total(100));
        assert_eq!(n, 100);
        println!("101 -> 100 at offset 50: {} reads", out.reads);
        assert!(out.reads <= 12, "{} reads", out.reads);
    }

    #[test]
    fn totals_are_exact_once_the_list_holds_still() {
        let mut rng = Seeded(0x5eed_cafe);
        let mut worst = (0, 0);
        for case in 0..4_000 {
            let n = match rng.below(4) {
                0 => rng.below(60),
                1 => rng.below(400),
                2 => rng.below(5_000),
                _ => rng.below(200_000),
            };
            let offset = if rng.below(3) == 0 {
                0
            } else {
                rng.below(n + 100)
            };
            let count = [0, 1, 10, 50, 100, 200, 1000][rng.below(7)];
            // Changes between the first rounds: deletes and creates, one or many, then none.
            let changing = rng.below(5);
            let changes: Vec<isize> = (0..changing)
                .map(|_| match rng.below(4) {
                    0 => -1,
                    1 => 1,
                    2 => -(rng.below(120) as isize),
                    _ => rng.below(120) as isize,
                })
                .collect();
            let (out, stable_n) = run_changing(n, offset, count, &changes);
            assert_eq!(
                out.answer,
                PagerRound::Total(stable_n),
                "case {case}: n={n} offset={offset} count={count} changes={changes:?}"
            );
            // The window's pages are read once each, at most 8 a round (9 with the check of
            // a remembered total); probe rounds stay within twice the static search.
            assert!(out.window_reads <= count.div_ceil(PAGE));
            assert!(out.widest_round <= WINDOW_PER_ROUND + 1);
            let (_, static_reads, static_rounds) = run(stable_n, offset, count, None);
            assert!(
                out.probe_rounds <= 2 * static_rounds + changing + 2,
                "case {case}: {} probe rounds, {static_rounds} rounds static",
                out.probe_rounds
            );
            let extra = out.reads.saturating_sub(static_reads);
            worst = worst.max((extra, case));
        }
        println!(
            "most reads above the static list's: {} (case {})",
            worst.0, worst.1
        );
    }

    #[test]
    fn a_list_that_never_holds_still_ends_within_the_cap() {
        let mut rng = Seeded(7);
        for _ in 0..500 {
            let n = rng.below(20_000);
            let count = [1, 50, 1000][rng.below(3)];
            let changes: Vec<isize> = (0..100).map(|_| rng.below(200) as isize - 100).collect();
            let (out, _) = run_changing(n, rng.below(n + 1), count, &changes);
            assert!(matches!(
                out.answer,
                PagerRound::Total(_) | PagerRound::GaveUp
            ));
            let cap = count.div_ceil(PAGE) + 1 + PROBES_PER_ROUND * MAX_ROUNDS;
            assert!(out.reads <= cap, "{} reads > {cap}", out.reads);
        }
    }

    #[test]
    fn the_window_of_a_large_page_is_read_a_few_pages_at_a_time() {
        let (out, _) = run_changing(10_000, 0, 1000, &[]);
        assert_eq!(out.answer, PagerRound::Total(10_000));
        assert_eq!(out.window_reads, 20);
        assert_eq!(out.widest_round, WINDOW_PER_ROUND);
    }
}
