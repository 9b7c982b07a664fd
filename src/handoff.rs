//! Human agents and the queue in front of them.
//!
//! [`AgentPool`] picks who takes a hand-off: an agent with the skill and the caller's language
//! (specialists before `general` agents), preferring agents who match the caller's traits (`vip` →
//! the `vip` skill, `upset` → `soothing`/`complaints`), then the longest idle. [`HoldQueue`] holds callers
//! nobody is free for: fraud/priority first, then VIP, then by arrival, with position and wait
//! announcements and a time-out.
//!
//! Sans-IO: everything takes `now`; the controller owns the timers and the SIP legs.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use voxgate_config::AgentConfig;
use voxgate_sip::uri::{Host, Uri};

/// One configured agent and what the controller knows of them.
#[derive(Debug)]
pub struct Agent {
    pub name: String,
    pub target: Uri,
    /// Where the agent's INVITE goes (the URI's host and port, resolved at start-up).
    pub addr: SocketAddr,
    pub skills: Vec<String>,
    pub languages: Vec<String>,
    busy: bool,
    idle_since: Instant,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("agent {name}: {uri} is not a SIP URI")]
    BadUri { name: String, uri: String },
    #[error("agent {name}: cannot resolve {host}")]
    Unresolvable { name: String, host: String },
}

/// Agents' calls take this long on average until one has been measured.
pub const DEFAULT_HANDLE_TIME: Duration = Duration::from_secs(180);

#[derive(Debug)]
pub struct AgentPool {
    agents: Vec<Agent>,
    /// Moving average of answered agent calls' length.
    handle_time: Duration,
    measured: bool,
}

impl Default for AgentPool {
    fn default() -> Self {
        Self {
            agents: Vec::new(),
            handle_time: DEFAULT_HANDLE_TIME,
            measured: false,
        }
    }
}

/// What routing knows about a caller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traits {
    /// The bank flags the customer as high value.
    pub vip: bool,
    /// The caller sounded angry or distressed (QA's lexical sentiment).
    pub upset: bool,
}

impl Traits {
    /// The traits as record tags.
    pub fn tags(self) -> Vec<String> {
        let mut t = Vec::new();
        if self.vip {
            t.push("vip".to_string());
        }
        if self.upset {
            t.push("upset".to_string());
        }
        t
    }

    /// How many of the caller's traits an agent's skills serve.
    fn matched_by(self, skills: &[String]) -> usize {
        let has = |s: &str| skills.iter().any(|k| k == s);
        usize::from(self.vip && has("vip"))
            + usize::from(self.upset && (has("soothing") || has("complaints")))
    }
}

impl AgentPool {
    /// Builds the pool from the config; host names are resolved once, here (start-up may block on DNS, a call
    /// never does).
    pub fn from_config(agents: &[AgentConfig], now: Instant) -> Result<Self, AgentError> {
        let mut out = Vec::with_capacity(agents.len());
        for a in agents {
            let target = Uri::parse(&a.uri).map_err(|_| AgentError::BadUri {
                name: a.name.clone(),
                uri: a.uri.clone(),
            })?;
            let Some(sip) = target.as_sip() else {
                return Err(AgentError::BadUri {
                    name: a.name.clone(),
                    uri: a.uri.clone(),
                });
            };
            let port = sip.port.unwrap_or(5060);
            let addr = match &sip.host {
                Host::Ip(ip) => SocketAddr::new(*ip, port),
                Host::Domain(name) => (name.as_str(), port)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut it| it.next())
                    .ok_or_else(|| AgentError::Unresolvable {
                        name: a.name.clone(),
                        host: name.clone(),
                    })?,
            };
            out.push(Agent {
                name: a.name.clone(),
                target,
                addr,
                skills: a.skills.clone(),
                languages: a.languages.clone(),
                busy: false,
                idle_since: now,
            });
        }
        Ok(Self {
            agents: out,
            ..Self::default()
        })
    }

    pub fn len(&self) -> usize {
        self.agents.len()
    }

    pub fn get(&self, i: usize) -> Option<&Agent> {
        self.agents.get(i)
    }

    /// Whether agent `i` could take a hand-off for `skill` in `language` (busy or not): the skill itself,
    /// or `general`.
    pub fn can_serve(&self, i: usize, skill: &str, language: &str) -> bool {
        self.agents.get(i).is_some_and(|a| {
            a.languages.iter().any(|l| l == language)
                && a.skills.iter().any(|s| s == skill || s == "general")
        })
    }

    /// Agents able to take such a hand-off, busy or not.
    pub fn able(&self, skill: &str, language: &str) -> usize {
        (0..self.agents.len())
            .filter(|i| self.can_serve(*i, skill, language))
            .count()
    }

    /// The free agent for a hand-off, skipping `tried`: specialists in the skill before `general` agents,
    /// then the one matching more of the caller's traits, then the longest idle.
    pub fn pick(
        &self,
        skill: &str,
        language: &str,
        traits: Traits,
        tried: &[usize],
    ) -> Option<usize> {
        (0..self.agents.len())
            .filter(|i| !self.agents[*i].busy && !tried.contains(i))
            .filter(|i| self.can_serve(*i, skill, language))
            .min_by_key(|i| {
                let a = &self.agents[*i];
                let generalist = !a.skills.iter().any(|s| s == skill);
                (
                    generalist,
                    std::cmp::Reverse(traits.matched_by(&a.skills)),
                    a.idle_since,
                )
            })
    }

    pub fn is_busy(&self, i: usize) -> bool {
        self.agents.get(i).is_some_and(|a| a.busy)
    }

    /// Average length of an answered agent call (the default until one was measured).
    pub fn handle_time(&self) -> Duration {
        self.handle_time
    }

    /// An answered agent call lasted `d`: updates the moving average (weight 1/5 for the newest).
    pub fn record_handle_time(&mut self, d: Duration) {
        self.handle_time = if self.measured {
            (self.handle_time * 4 + d) / 5
        } else {
            d
        };
        self.measured = true;
    }

    pub fn set_busy(&mut self, i: usize) {
        if let Some(a) = self.agents.get_mut(i) {
            a.busy = true;
        }
    }

    pub fn set_free(&mut self, i: usize, now: Instant) {
        if let Some(a) = self.agents.get_mut(i) {
            a.busy = false;
            a.idle_since = now;
        }
    }
}

/// A caller waiting for an agent.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub key: u64,
    pub skill: String,
    pub language: String,
    pub priority: bool,
    pub traits: Traits,
    seq: u64,
    next_announce: Instant,
    gives_up: Instant,
}

impl Waiting {
    /// Queue order: priority (fraud) first, then VIP, then arrival.
    fn rank(&self) -> (bool, bool, u64) {
        (!self.priority, !self.traits.vip, self.seq)
    }
}

/// Something the queue wants done for a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueEvent {
    /// Tell the caller where they are and how long it may take.
    Announce {
        key: u64,
        position: usize,
        wait_minutes: u64,
    },
    /// The caller waited the longest allowed and left the queue.
    TimedOut { key: u64 },
}

/// Callers nobody was free for.
#[derive(Debug, Default)]
pub struct HoldQueue {
    waiting: Vec<Waiting>,
    seq: u64,
}

/// What a caller joins the queue with.
pub struct Join<'a> {
    pub key: u64,
    pub skill: &'a str,
    pub language: &'a str,
    pub priority: bool,
    pub traits: Traits,
}

impl HoldQueue {
    /// Adds a caller (the first announcement is the caller's to make at once); returns their position.
    pub fn join(
        &mut self,
        j: Join<'_>,
        now: Instant,
        announce_every: Duration,
        timeout: Duration,
    ) -> usize {
        self.leave(j.key);
        self.seq += 1;
        self.waiting.push(Waiting {
            key: j.key,
            skill: j.skill.to_string(),
            language: j.language.to_string(),
            priority: j.priority,
            traits: j.traits,
            seq: self.seq,
            next_announce: now + announce_every,
            gives_up: now + timeout,
        });
        self.waiting.sort_by_key(Waiting::rank);
        self.position(j.key).unwrap_or(1)
    }

    pub fn leave(&mut self, key: u64) -> Option<Waiting> {
        let i = self.waiting.iter().position(|w| w.key == key)?;
        Some(self.waiting.remove(i))
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn contains(&self, key: u64) -> bool {
        self.waiting.iter().any(|w| w.key == key)
    }

    /// 1 + callers ahead waiting for the same skill and language.
    pub fn position(&self, key: u64) -> Option<usize> {
        let me = self.waiting.iter().position(|w| w.key == key)?;
        let w = &self.waiting[me];
        Some(
            1 + self.waiting[..me]
                .iter()
                .filter(|o| o.skill == w.skill && o.language == w.language)
                .count(),
        )
    }

    /// Rounds of able agents ahead of the caller × the average handle time, in whole minutes (at least 1).
    pub fn wait_minutes(&self, key: u64, pool: &AgentPool) -> Option<u64> {
        let w = self.waiting.iter().find(|w| w.key == key)?;
        let position = self.position(key)? as u64;
        let able = pool.able(&w.skill, &w.language).max(1) as u64;
        let rounds = position.div_ceil(able);
        let secs = rounds * pool.handle_time().as_secs();
        Some(secs.div_ceil(60).max(1))
    }

    /// The first caller, in queue order, that agent `agent` can serve.
    pub fn next_for(&self, pool: &AgentPool, agent: usize) -> Option<u64> {
        self.waiting
            .iter()
            .find(|w| pool.can_serve(agent, &w.skill, &w.language))
            .map(|w| w.key)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.waiting
            .iter()
            .map(|w| w.next_announce.min(w.gives_up))
            .min()
    }

    /// Time-outs (removed from the queue) and due announcements (rescheduled).
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        announce_every: Duration,
        pool: &AgentPool,
    ) -> Vec<QueueEvent> {
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for w in &self.waiting {
            if w.gives_up <= now {
                gone.push(w.key);
            }
        }
        for key in gone {
            self.leave(key);
            out.push(QueueEvent::TimedOut { key });
        }
        let due: Vec<u64> = self
            .waiting
            .iter()
            .filter(|w| w.next_announce <= now)
            .map(|w| w.key)
            .collect();
        for key in due {
            if let (Some(position), Some(wait_minutes)) =
                (self.position(key), self.wait_minutes(key, pool))
            {
                out.push(QueueEvent::Announce {
                    key,
                    position,
                    wait_minutes,
                });
            }
            if let Some(w) = self.waiting.iter_mut().find(|w| w.key == key) {
                w.next_announce = now + announce_every;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn agent(name: &str, skills: &[&str], langs: &[&str]) -> AgentConfig {
        AgentConfig {
            name: name.into(),
            uri: format!("sip:{name}@127.0.0.1:5070"),
            skills: skills.iter().map(|s| s.to_string()).collect(),
            languages: langs.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn skill_language_and_longest_idle_decide() {
        let t0 = Instant::now();
        let mut p = AgentPool::from_config(
            &[
                agent("ann", &["fraud", "general"], &["en"]),
                agent("ben", &["fraud"], &["en"]),
                agent("chen", &["general"], &["zh"]),
                agent("dee", &["cards"], &["en"]),
            ],
            t0,
        )
        .unwrap();
        assert_eq!(p.get(0).unwrap().addr, "127.0.0.1:5070".parse().unwrap());
        let none = Traits::default();
        // ann and ben have both been idle since t0: the first wins; once ann worked, ben is longer idle.
        assert_eq!(p.pick("fraud", "en", none, &[]), Some(0));
        p.set_busy(0);
        p.set_free(0, t0 + Duration::from_secs(5));
        assert_eq!(p.pick("fraud", "en", none, &[]), Some(1));
        // Tried agents are skipped; busy ones too.
        assert_eq!(p.pick("fraud", "en", none, &[1]), Some(0));
        p.set_busy(0);
        p.set_busy(1);
        assert_eq!(p.pick("fraud", "en", none, &[]), None);
        // Language must match; a general agent covers other skills.
        assert_eq!(p.pick("general", "zh", none, &[]), Some(2));
        assert_eq!(p.pick("vip", "zh", none, &[]), Some(2));
        assert_eq!(p.pick("cards", "zh", none, &[]), Some(2));
        assert_eq!(p.pick("cards", "en", none, &[]), Some(3));
        assert_eq!(p.able("fraud", "en"), 2);
        assert_eq!(p.able("cards", "en"), 2, "dee, and ann as a generalist");
        assert_eq!(p.able("fraud", "fr"), 0);
    }

    #[test]
    fn specialists_then_traits_then_longest_idle() {
        let t0 = Instant::now();
        let mut p = AgentPool::from_config(
            &[
                agent("gen", &["general"], &["en"]),
                agent("plain", &["cards"], &["en"]),
                agent("calm", &["cards", "soothing"], &["en"]),
                agent("vipdesk", &["general", "vip"], &["en"]),
            ],
            t0,
        )
        .unwrap();
        // calm became idle later than plain: without traits, plain (longer idle) wins.
        p.set_busy(2);
        p.set_free(2, t0 + Duration::from_secs(1));
        let upset = Traits {
            upset: true,
            vip: false,
        };
        let vip = Traits {
            vip: true,
            upset: false,
        };
        assert_eq!(p.pick("cards", "en", Traits::default(), &[]), Some(1));
        assert_eq!(p.pick("cards", "en", upset, &[]), Some(2));
        // A specialist beats a generalist who matches the trait.
        assert_eq!(p.pick("cards", "en", vip, &[]), Some(1));
        // Among generalists (no specialist in "loans"), the VIP desk wins for a VIP.
        assert_eq!(p.pick("loans", "en", vip, &[]), Some(3));
        assert_eq!(p.pick("loans", "en", Traits::default(), &[]), Some(0));
        assert_eq!(vip.tags(), ["vip"]);
        assert_eq!(upset.tags(), ["upset"]);
    }

    #[test]
    fn handle_time_is_a_moving_average() {
        let mut p = AgentPool::default();
        assert_eq!(p.handle_time(), DEFAULT_HANDLE_TIME);
        p.record_handle_time(Duration::from_secs(100));
        assert_eq!(p.handle_time(), Duration::from_secs(100));
        p.record_handle_time(Duration::from_secs(200));
        assert_eq!(p.handle_time(), Duration::from_secs(120));
    }

    #[test]
    fn bad_uris_are_refused() {
        let mut a = agent("x", &["general"], &["en"]);
        a.uri = "mailto:x@y".into();
        assert!(matches!(
            AgentPool::from_config(&[a], Instant::now()),
            Err(AgentError::BadUri { .. })
        ));
    }

    fn join(
        q: &mut HoldQueue,
        key: u64,
        skill: &str,
        priority: bool,
        vip: bool,
        now: Instant,
    ) -> usize {
        q.join(
            Join {
                key,
                skill,
                language: "en",
                priority,
                traits: Traits { vip, upset: false },
            },
            now,
            Duration::from_secs(30),
            Duration::from_secs(90),
        )
    }

    #[test]
    fn queue_order_is_priority_then_vip_then_arrival_per_skill() {
        let t0 = Instant::now();
        let mut q = HoldQueue::default();
        assert_eq!(join(&mut q, 1, "general", false, false, t0), 1);
        assert_eq!(join(&mut q, 2, "general", false, false, t0), 2);
        // A VIP goes ahead of ordinary callers; fraud ahead of everyone.
        assert_eq!(join(&mut q, 3, "general", false, true, t0), 1);
        assert_eq!(join(&mut q, 4, "general", true, false, t0), 1);
        assert_eq!(q.position(1), Some(3));
        assert_eq!(q.position(2), Some(4));
        // Another skill has its own line.
        assert_eq!(join(&mut q, 5, "cards", false, false, t0), 1);
        assert_eq!(q.len(), 5);
        q.leave(4);
        assert_eq!(q.position(3), Some(1));
        assert_eq!(q.position(1), Some(2));
        assert!(!q.contains(4));
    }

    #[test]
    fn announcements_wait_estimates_time_outs_and_the_next_caller_for_a_freed_agent() {
        let t0 = Instant::now();
        let mut pool = AgentPool::from_config(
            &[
                agent("ann", &["general"], &["en"]),
                agent("ben", &["cards"], &["en"]),
            ],
            t0,
        )
        .unwrap();
        let mut q = HoldQueue::default();
        join(&mut q, 1, "general", false, false, t0);
        join(
            &mut q,
            2,
            "general",
            false,
            false,
            t0 + Duration::from_secs(10),
        );
        join(
            &mut q,
            3,
            "general",
            false,
            false,
            t0 + Duration::from_secs(20),
        );
        // general: only ann can serve; cards: ann (general) and ben.
        assert_eq!(q.wait_minutes(1, &pool), Some(3), "one round of 3 min");
        assert_eq!(q.wait_minutes(3, &pool), Some(9));
        pool.record_handle_time(Duration::from_secs(90));
        assert_eq!(
            q.wait_minutes(3, &pool),
            Some(5),
            "3 × 90 s = 4.5 min, rounded up"
        );
        assert_eq!(q.poll_timeout(), Some(t0 + Duration::from_secs(30)));
        let ev = q.handle_timeout(t0 + Duration::from_secs(30), Duration::from_secs(30), &pool);
        assert_eq!(
            ev,
            [QueueEvent::Announce {
                key: 1,
                position: 1,
                wait_minutes: 2
            }]
        );
        // ben (cards only) cannot take a general caller; ann can.
        assert_eq!(q.next_for(&pool, 1), None);
        assert_eq!(q.next_for(&pool, 0), Some(1));
        // Caller 1 gives up at 90 s; 2 and 3 are announced on their own schedules.
        let ev = q.handle_timeout(t0 + Duration::from_secs(90), Duration::from_secs(30), &pool);
        assert_eq!(ev[0], QueueEvent::TimedOut { key: 1 });
        assert!(ev.contains(&QueueEvent::Announce {
            key: 2,
            position: 1,
            wait_minutes: 2
        }));
        assert_eq!(q.position(3), Some(2));
    }
}
