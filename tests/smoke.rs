use crate::common::*;

#[test]
fn broadcast_reaches_a_tcp_and_a_unix_client() {
    let server = Setup::new().start();
    let mut tcp = server.client();
    let mut unix = WsClient::connect_unix(&server.unix(), &Cookies::fresh("bob")).unwrap();
    let mut control = server.control();
    control.send(b'b', b"Hello, World!!!");
    assert_eq!(tcp.recv_text(), "Hello, World!!!");
    assert_eq!(unix.recv_text(), "Hello, World!!!");
}
