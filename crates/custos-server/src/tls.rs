//! The process's TLS setup, in one place.
//!
//! The HTTP client speaks TLS through rustls with the `ring` provider, with
//! no provider compiled in as the default: rustls then needs one installed
//! for the whole process before the first client is built, or building any
//! client panics. Cargo unifies features across the workspace, so this
//! holds for every client in every binary and test of it, not only the
//! webhook sender. Hence: nothing builds a `reqwest::Client` itself
//! (clippy's `disallowed-methods` in `clippy.toml` refuses it); everything
//! goes through [`client_builder`], which installs the provider first.

/// Installs rustls's `ring` provider as the process default, once. Safe to
/// call any number of times, from any thread: a provider already installed
/// (by an earlier call, or by an embedding program) is kept.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may win the race; either way one is installed.
        // rustls deprecates the ring provider for lacking post-quantum key
        // exchange; the provider that has it (aws-lc) needs cmake and a C++
        // toolchain, which Custos's build avoids. Classical key exchange is
        // what webhook receivers offer today (docs/webhooks.md).
        #[allow(deprecated)]
        let provider = rustls::crypto::ring::default_provider();
        let _ = provider.install_default();
    }
}

/// A `reqwest` client builder, with the crypto provider installed.
/// Certificates are verified against the platform's trust store (plus any
/// root added with `add_root_certificate`); there is no switch to turn
/// verification off.
#[allow(clippy::disallowed_methods)]
pub fn client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
}

/// A client with the defaults, for tests and tools.
pub fn client() -> reqwest::Client {
    client_builder()
        .build()
        .unwrap_or_else(|e| panic!("the default http client always builds: {e}"))
}
