//! QR payloads: encoding, rendering and decoding of prescription QR codes.
