//! Pushing images to and pulling them from a registry over the OCI Distribution API: credentials as
//! docker and podman keep them, an HTTP client that authenticates and retries, the push, and the pull
//! (a blob source backed by the blob cache).

pub mod cache;
pub mod client;
pub(crate) mod cloud;
pub mod credentials;
pub mod login;
pub(crate) mod origin;
pub mod pull;
pub mod push;
pub(crate) mod referrers;
pub(crate) mod signatures;
pub(crate) mod transport;
mod upload;
pub mod verify;

/// The host the registry API lives on: Docker Hub's API is not at `docker.io`.
pub(crate) fn api_host(domain: &str) -> String {
    if let Some(mapped) = test_host(domain) {
        return mapped;
    }
    if domain == crate::image::reference::DOCKER_HUB {
        "registry-1.docker.io".to_owned()
    } else {
        domain.to_owned()
    }
}

/// Where the tests send a registry named like a cloud's (`ZEROIMAGE_TEST_HOST_MAP=HOST=ADDR,...`):
/// debug builds only, and only to a loopback address, so that no build can be pointed at another
/// machine by its environment.
#[cfg(debug_assertions)]
fn test_host(domain: &str) -> Option<String> {
    let map = std::env::var("ZEROIMAGE_TEST_HOST_MAP").ok()?;
    map.split(',')
        .filter_map(|pair| pair.split_once('='))
        .find(|(from, to)| *from == domain && is_loopback(to))
        .map(|(_, to)| to.to_owned())
}

#[cfg(not(debug_assertions))]
fn test_host(_: &str) -> Option<String> {
    None
}

/// True for `localhost`, `127.0.0.0/8` and `[::1]` (with or without a port): registries that may be
/// spoken to over plain HTTP without asking.
pub(crate) fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name == "localhost"
        || name == "::1"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_api_host() {
        assert_eq!(api_host("docker.io"), "registry-1.docker.io".to_owned());
        assert_eq!(api_host("ghcr.io"), "ghcr.io");
    }

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "example.com",
            "10.0.0.1:5000",
            "registry.local:443",
            "[2001:db8::1]:5000",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
