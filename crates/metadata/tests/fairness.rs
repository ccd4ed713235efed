//! One guest cannot take the metadata service from the others of its VPC: past its share of
//! connections, its next one is closed, while another guest's is served. (Over loopback, each
//! 127.0.0.x address standing for a guest.)

use corral_metadata::example::instance_view;
use corral_metadata::{InstanceDirectory, InstanceView, MetadataServer, TokenKey};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const VPC: &str = "vpc-0fa1";

/// Every loopback address is a known instance.
struct Everyone;

impl InstanceDirectory for Everyone {
    fn view_by_ip(&self, _vpc_id: &str, ip: Ipv4Addr) -> Option<Arc<InstanceView>> {
        Some(Arc::new(instance_view("i-0aaaaaaaaaaaaaaaa", ip)))
    }
}

async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(to).await.unwrap()
}

/// Whether the server closes `stream` within `within`.
async fn closed(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout(within, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn one_guest_holds_at_most_its_share_of_connections() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = MetadataServer::new(VPC, Arc::new(Everyone), TokenKey::random());
    tokio::spawn(server.serve(listener, std::future::pending()));

    let greedy = Ipv4Addr::new(127, 0, 0, 2);
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(connect_from(greedy, addr).await);
    }
    let mut one_more = connect_from(greedy, addr).await;
    assert!(closed(&mut one_more, Duration::from_secs(5)).await, "a 17th connection from one guest stayed open");

    // Another guest is served meanwhile.
    let mut other = connect_from(Ipv4Addr::new(127, 0, 0, 3), addr).await;
    other.write_all(b"GET /latest/meta-data/instance-id HTTP/1.1\r\nhost: 169.254.169.254\r\nconnection: close\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), other.read_to_string(&mut answer)).await.expect("answered in time").unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("i-0aaaaaaaaaaaaaaaa"), "{answer}");

    // Its share comes back when it lets go (once the server has seen them close).
    drop(held);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = connect_from(greedy, addr).await;
        let _ = again.write_all(b"GET /latest/meta-data/instance-id HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
        let mut answer = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), again.read_to_string(&mut answer)).await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the guest was not served again after closing its connections");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
