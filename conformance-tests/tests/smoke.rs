use conformance_tests::both_backends;
use conformance_tests::{json, Server};

both_backends! {
    fn created_patient_reads_back_with_its_version() {
        let server = Server::start();
        let id = server.create(&json!({"resourceType": "Patient", "name": [{"family": "Smith"}]}));
        let read = server.get(&format!("Patient/{id}"));
        assert_eq!(read.status, 200);
        assert_eq!(read.header("etag"), Some("W/\"1\""));
        assert_eq!(read.json()["name"][0]["family"], "Smith");
    }
}
