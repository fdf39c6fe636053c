//! The sign-path workload shared by the criterion benchmark and the instruction-count driver:
//! a P-256 CA and distinct P-256 CSRs shaped like agents' (CN + SPIFFE URI SAN).

use relay_issuer::pki::generate::{
    GeneratedKeyType, PkiSpec, generate_key, generate_pki, make_csr,
};
use relay_issuer::pki::{SignRequest, SigningCa, SigningPolicy, sign};
use time::{Duration, OffsetDateTime};

pub struct Workload {
    pub ca: SigningCa,
    pub csrs: Vec<String>,
    pub usages: Vec<String>,
    pub policy: SigningPolicy,
    pub now: OffsetDateTime,
}

impl Workload {
    pub fn new(csr_count: usize) -> Self {
        let now = OffsetDateTime::now_utc();
        let spec = PkiSpec::default();
        let pki = generate_pki(&spec, now).expect("generate the CA");
        let ca = SigningCa::load(
            pki.intermediate.cert_pem.as_bytes(),
            pki.intermediate.key_pem.as_bytes(),
            Some(pki.root.cert_pem.as_bytes()),
            now,
        )
        .expect("load the CA");
        let csrs = (0..csr_count)
            .map(|i| {
                let key = generate_key(GeneratedKeyType::P256).expect("key");
                let cluster = format!("cluster-{i}");
                make_csr(
                    &key,
                    &cluster,
                    &[],
                    &[format!("spiffe://relay.local/relay/cluster/{cluster}")],
                )
                .expect("csr")
            })
            .collect();
        let usages = ["client auth", "digital signature", "key encipherment"]
            .map(String::from)
            .to_vec();
        Self {
            ca,
            csrs,
            usages,
            policy: SigningPolicy::default(),
            now,
        }
    }

    /// Signs CSR number `i` (modulo the count) and returns the chain's length.
    pub fn sign_one(&self, i: usize) -> usize {
        let request = SignRequest {
            csr_pem: self.csrs[i % self.csrs.len()].as_bytes(),
            duration: Some(Duration::hours(8760)),
            is_ca: false,
            usages: &self.usages,
        };
        sign(
            &self.ca,
            std::hint::black_box(&request),
            &self.policy,
            self.now,
        )
        .expect("sign")
        .chain_pem
        .len()
    }
}

/// One ring P-256 signature and one verification: the crypto every issued certificate costs.
pub struct CryptoFloor {
    rng: ring::rand::SystemRandom,
    key: ring::signature::EcdsaKeyPair,
    public: ring::signature::UnparsedPublicKey<Vec<u8>>,
    message: Vec<u8>,
    signature: Vec<u8>,
}

impl Default for CryptoFloor {
    fn default() -> Self {
        Self::new()
    }
}

impl CryptoFloor {
    pub fn new() -> Self {
        use ring::signature::{self, EcdsaKeyPair, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .expect("key");
        let key = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .expect("key");
        let message = vec![0x5au8; 400];
        let signature = key.sign(&rng, &message).expect("sign").as_ref().to_vec();
        let public = signature::UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_ASN1,
            key.public_key().as_ref().to_vec(),
        );
        Self {
            rng,
            key,
            public,
            message,
            signature,
        }
    }

    pub fn sign(&self) -> usize {
        self.key
            .sign(&self.rng, std::hint::black_box(&self.message))
            .expect("sign")
            .as_ref()
            .len()
    }

    pub fn verify(&self) {
        self.public
            .verify(std::hint::black_box(&self.message), &self.signature)
            .expect("verify");
    }
}
