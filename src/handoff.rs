//! Human agents: who may take a hand-off, chosen by skill and language, longest-idle first.
//!
//! Sans-IO: the controller asks for an agent with `now`, marks agents busy while they ring or talk and
//! free when the leg ends.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Instant;

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

#[derive(Debug, Default)]
pub struct AgentPool {
    agents: Vec<Agent>,
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
        Ok(Self { agents: out })
    }

    pub fn len(&self) -> usize {
        self.agents.len()
    }

    pub fn get(&self, i: usize) -> Option<&Agent> {
        self.agents.get(i)
    }

    /// The free agent with the skill and language who has been idle longest, skipping `tried`. An agent
    /// with the `general` skill takes any hand-off when no specialist is free.
    pub fn pick(&self, skill: &str, language: &str, tried: &[usize]) -> Option<usize> {
        let free = |i: &usize| {
            let a = &self.agents[*i];
            !a.busy && !tried.contains(i) && a.languages.iter().any(|l| l == language)
        };
        let best = |need: &str| {
            (0..self.agents.len())
                .filter(free)
                .filter(|i| self.agents[*i].skills.iter().any(|s| s == need))
                .min_by_key(|i| self.agents[*i].idle_since)
        };
        best(skill).or_else(|| (skill != "general").then(|| best("general")).flatten())
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
        // ann and ben have both been idle since t0: the first wins; once ann worked, ben is longer idle.
        assert_eq!(p.pick("fraud", "en", &[]), Some(0));
        p.set_busy(0);
        p.set_free(0, t0 + Duration::from_secs(5));
        assert_eq!(p.pick("fraud", "en", &[]), Some(1));
        // Tried agents are skipped; busy ones too.
        assert_eq!(p.pick("fraud", "en", &[1]), Some(0));
        p.set_busy(0);
        p.set_busy(1);
        assert_eq!(p.pick("fraud", "en", &[]), None);
        // Language must match; a general agent covers other skills.
        assert_eq!(p.pick("general", "zh", &[]), Some(2));
        assert_eq!(p.pick("vip", "zh", &[]), Some(2));
        assert_eq!(p.pick("cards", "zh", &[]), Some(2));
        assert_eq!(p.pick("cards", "en", &[]), Some(3));
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
}
