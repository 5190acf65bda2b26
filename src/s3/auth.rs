use crate::engine::Engine;
use s3s::S3Result;
use s3s::auth::{S3Auth, SecretKey};

/// Secrets come from the `access_keys` table; disabled or unknown keys are InvalidAccessKeyId.
pub struct KeyStore {
    pub engine: Engine,
}

#[async_trait::async_trait]
impl S3Auth for KeyStore {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.engine.access_key(access_key).await {
            Ok(Some(k)) => Ok(SecretKey::from(k.secret)),
            Ok(None) => Err(s3s::s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
            Err(e) => Err(super::to_s3_error(e)),
        }
    }
}
