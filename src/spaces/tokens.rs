//! Space tokens: what a space's token may reach ([`SpaceAccess`], the table the admin API
//! scopes requests with), and issuing and revoking the tokens of stored spaces (shown once,
//! kept as hashes).
//!
//! It checks no request itself: the admin API compares a caller's token with these hashes.

use std::sync::Arc;
use std::time::SystemTime;

use super::{SpaceError, Spaces, seal};
use crate::lifecycle::Lifecycle;
use crate::store::{StoredSpace, StoredToken};

/// A space as the admin API sees it: its apps and the tokens scoped to it.
#[derive(Clone)]
pub struct SpaceAccess {
    /// Its id.
    pub id: String,
    /// Its apps.
    pub lifecycle: Arc<Lifecycle>,
    /// Its base domains.
    pub domains: Arc<Vec<String>>,
    /// SHA-256 of each token that acts on this space only.
    pub tokens: Vec<[u8; 32]>,
}

/// A token just issued: shown once, then only its hash is kept.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// Its public id, to revoke it.
    pub id: String,
    /// The token.
    pub token: crate::secret::Secret,
}

impl Spaces {
    /// Issues a new token for a stored space.
    pub async fn issue_token(&self, id: &str) -> Result<IssuedToken, SpaceError> {
        let (token_id, token) = seal::new_token()?;
        let hash = seal::hash_text(&seal::token_hash(token.expose()));
        self.change_tokens(id, |tokens| {
            tokens.push(StoredToken {
                id: token_id.clone(),
                hash,
                created_at: SystemTime::now(),
            });
            Ok(())
        })
        .await?;
        Ok(IssuedToken {
            id: token_id,
            token,
        })
    }

    /// Revokes a token of a stored space: refused from the next request on.
    pub async fn revoke_token(&self, id: &str, token: &str) -> Result<(), SpaceError> {
        self.change_tokens(id, |tokens| {
            let before = tokens.len();
            tokens.retain(|t| t.id != token);
            if tokens.len() == before {
                return Err(SpaceError::UnknownToken {
                    space: id.to_owned(),
                    token: token.to_owned(),
                });
            }
            Ok(())
        })
        .await
    }

    async fn change_tokens(
        &self,
        id: &str,
        change: impl FnOnce(&mut Vec<StoredToken>) -> Result<(), SpaceError>,
    ) -> Result<(), SpaceError> {
        self.hosted.as_ref().ok_or(SpaceError::NotHosted)?;
        let mut running = self.running.lock().await;
        let space = self.find(&running, id)?;
        let Some(stored) = &space.stored else {
            return Err(SpaceError::FromConfig(id.to_owned()));
        };
        let mut tokens = stored.tokens.clone();
        change(&mut tokens)?;
        let row = StoredSpace {
            id: id.to_owned(),
            settings: stored.row.0.clone(),
            providers: stored.row.1.clone(),
            revision: stored.revision + 1,
            created_at: stored.created_at,
            updated_at: SystemTime::now(),
            tokens,
        };
        self.store.put_space(&row, &self.key_check).await?;
        if let Some(space) = running.iter_mut().find(|space| space.config.id == id)
            && let Some(stored) = &mut space.stored
        {
            stored.tokens = row.tokens;
            stored.revision = row.revision;
            stored.updated_at = row.updated_at;
        }
        self.publish(&running);
        self.registry.announce_spaces().await;
        Ok(())
    }
}
