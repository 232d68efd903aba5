//! The wire messages' encodings: round trips, bounds, refusals.
use super::*;

#[test]
fn blob_reply_round_trips_and_refuses_trailing_bytes() {
    let m = BlobReply::Chunk {
        total: 10,
        data: vec![1, 2, 3],
    };
    let mut b = m.to_bytes();
    assert_eq!(BlobReply::from_bytes(&b).unwrap(), m);
    b.push(0);
    assert!(matches!(
        BlobReply::from_bytes(&b),
        Err(DecodeError::TrailingBytes(1))
    ));
}

#[test]
fn a_message_of_another_type_is_refused() {
    let b = ResultAck::Received.to_bytes();
    assert!(matches!(
        BlobReply::from_bytes(&b),
        Err(DecodeError::WrongKind { .. })
    ));
}

#[test]
fn payments_and_verify_messages_round_trip() {
    let p = Payment {
        job_id: B256::repeat_byte(1),
        secret: B256::repeat_byte(2),
        voucher: Some((
            Voucher {
                channel_id: B256::repeat_byte(3),
                cumulative_amount: sietch_market::U256::from(99),
            },
            [4u8; 65],
        )),
        note: String::new(),
    };
    assert_eq!(Payment::from_bytes(&p.to_bytes()).unwrap(), p);
    let withheld = Payment {
        voucher: None,
        note: "check failed".into(),
        ..p
    };
    assert_eq!(Payment::from_bytes(&withheld.to_bytes()).unwrap(), withheld);
    for a in [
        PaymentAck::Accepted,
        PaymentAck::Refused {
            message: "stale".into(),
        },
    ] {
        assert_eq!(PaymentAck::from_bytes(&a.to_bytes()).unwrap(), a);
    }
    let v = VerifyReply::Refused {
        message: "not drawn".into(),
    };
    assert_eq!(VerifyReply::from_bytes(&v.to_bytes()).unwrap(), v);
    let mut bad = PaymentAck::Accepted.to_bytes();
    bad[2] = 9;
    assert!(matches!(
        PaymentAck::from_bytes(&bad),
        Err(DecodeError::BadTag { .. })
    ));
}

#[test]
fn a_job_request_round_trips_with_and_without_a_carried_payment() {
    use sietch_market::{BlobRef, Limits, Requirements, U256, VerificationPolicy};
    let spec = JobSpec {
        module: BlobRef::of(b"module").hash,
        args: vec!["a".into()],
        env: vec![],
        stdin: None,
        inputs: vec![],
        limits: Limits {
            fuel: 1_000,
            memory_bytes: 1 << 16,
            wall_time_ms: 1_000,
            output_bytes: 1 << 10,
        },
        requirements: Requirements::default(),
        verification: VerificationPolicy::default(),
        price_cap: 10,
        deadline: 100,
    };
    let ticket = Ticket {
        job_id: B256::repeat_byte(1),
        spec_hash: spec.hash(),
        channel_id: B256::repeat_byte(2),
        cumulative_before: U256::from(5),
        max_amount: U256::from(10),
        deadline: 200,
        check_commit: B256::repeat_byte(3),
        per_gfuel: 0,
        per_gpu_second: 0,
    };
    let alone = JobRequest {
        spec,
        ticket,
        ticket_signature: [9u8; 65],
        paying: None,
    };
    assert_eq!(JobRequest::from_bytes(&alone.to_bytes()).unwrap(), alone);
    let carrying = JobRequest {
        paying: Some(Payment {
            job_id: B256::repeat_byte(4),
            secret: B256::repeat_byte(5),
            voucher: Some((
                Voucher {
                    channel_id: B256::repeat_byte(2),
                    cumulative_amount: U256::from(5),
                },
                [6u8; 65],
            )),
            note: String::new(),
        }),
        ..alone.clone()
    };
    let bytes = carrying.to_bytes();
    assert_eq!(JobRequest::from_bytes(&bytes).unwrap(), carrying);
    // The carried payment is the pay protocol's body, behind the option byte.
    let pay = carrying.paying.as_ref().unwrap().to_bytes();
    assert!(bytes.ends_with(&pay[2..]));
    assert_eq!(bytes[bytes.len() - pay.len() + 1], 1);
    // A request cut inside its payment, or with an option byte that is neither 0 nor 1,
    // is refused.
    assert!(JobRequest::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    let mut bad = alone.to_bytes();
    *bad.last_mut().unwrap() = 2;
    assert!(matches!(
        JobRequest::from_bytes(&bad),
        Err(DecodeError::BadTag { .. })
    ));
}

#[test]
fn a_result_in_a_job_reply_round_trips_and_is_bounded() {
    let result = JobResult {
        job_id: B256::repeat_byte(7),
        outcome: Outcome::Exited { code: -3 },
        stdout: b"hello".to_vec(),
        files: [("out.bin".to_string(), vec![1, 2, 3])].into(),
        commitment: ResultCommitment {
            job_id: B256::repeat_byte(7),
            spec_hash: B256::repeat_byte(8),
            channel_id: B256::repeat_byte(4),
            output_hash: B256::repeat_byte(9),
            fuel_used: 1234,
            gpu_millis: 0,
            amount: sietch_market::U256::from(55),
        },
        signature: [6u8; 65],
    };
    // Two files of one name: not a result (its files are a map).
    let mut twice = result.to_bytes();
    let file = [
        &7u32.to_be_bytes()[..],
        b"out.bin",
        &3u32.to_be_bytes()[..],
        &[1, 2, 3],
    ]
    .concat();
    let at = twice
        .windows(file.len())
        .position(|w| w == file.as_slice())
        .unwrap();
    twice.splice(at..at, file.iter().copied());
    let count = at - 4;
    twice[count..at].copy_from_slice(&2u32.to_be_bytes());
    assert!(matches!(
        JobResult::from_bytes(&twice),
        Err(DecodeError::Invalid { .. })
    ));
    // On the result protocol: a result as before (tag 3), or a failure (tag 11).
    let done = ResultMessage::Done(Box::new(result.clone()));
    assert_eq!(done.to_bytes(), result.to_bytes());
    assert_eq!(ResultMessage::from_bytes(&result.to_bytes()).unwrap(), done);
    let failed = ResultMessage::Failed(JobFailure {
        job_id: B256::repeat_byte(7),
        reason: RefuseReason::MissingBlob,
        message: "x".repeat(5_000),
    });
    let f = failed.to_bytes();
    assert_eq!(f[1], 11);
    assert_eq!(
        &f[2..34],
        B256::repeat_byte(7).as_slice(),
        "the job id first"
    );
    let ResultMessage::Failed(back) = ResultMessage::from_bytes(&f).unwrap() else {
        panic!("a failure")
    };
    assert_eq!(back.message.len(), 1024, "the message is bounded");
    assert!(ResultMessage::from_bytes(&f[..f.len() - 1]).is_err());
    let m = JobReply::Done(Box::new(result.clone()));
    let bytes = m.to_bytes();
    assert_eq!(JobReply::from_bytes(&bytes).unwrap(), m);
    // The same body as on the result protocol, behind the reply's variant byte.
    assert_eq!(&bytes[3..], &result.to_bytes()[2..]);
    // A delivery to a verifier, and from it to the buyer: the same body again.
    use sietch_market::{Limits, Requirements, VerificationPolicy};
    let delivered = VerifyReply::Delivered(Box::new(result.clone()));
    let d = delivered.to_bytes();
    assert_eq!(VerifyReply::from_bytes(&d).unwrap(), delivered);
    assert_eq!(&d[3..], &result.to_bytes()[2..]);
    let spec = JobSpec {
        module: B256::repeat_byte(1),
        args: vec![],
        env: vec![],
        stdin: None,
        inputs: vec![],
        limits: Limits {
            fuel: 1,
            memory_bytes: 1,
            wall_time_ms: 1,
            output_bytes: 1,
        },
        requirements: Requirements::default(),
        verification: VerificationPolicy::default(),
        price_cap: 1,
        deadline: 1,
    };
    let mut ask = VerifyRequest {
        ticket_id: B256::repeat_byte(2),
        job_id: B256::repeat_byte(7),
        spec,
        delivery: None,
    };
    assert_eq!(VerifyRequest::from_bytes(&ask.to_bytes()).unwrap(), ask);
    ask.delivery = Some(Box::new(result.clone()));
    let with = ask.to_bytes();
    assert_eq!(VerifyRequest::from_bytes(&with).unwrap(), ask);
    assert!(with.ends_with(&result.to_bytes()[2..]));
    assert!(VerifyRequest::from_bytes(&with[..with.len() - 1]).is_err());
    let mut bad = d.clone();
    bad[2] = 3;
    assert!(matches!(
        VerifyReply::from_bytes(&bad),
        Err(DecodeError::BadTag { .. })
    ));
    let mut cut = bytes.clone();
    cut.truncate(cut.len() - 1);
    assert!(JobReply::from_bytes(&cut).is_err());
    let oversized = vec![0u8; JobReply::MAX + 1];
    assert!(matches!(
        JobReply::from_bytes(&oversized),
        Err(DecodeError::Oversized { .. })
    ));
}

#[test]
fn refusal_text_is_bounded() {
    let m = JobReply::Refused {
        reason: RefuseReason::Busy,
        message: "é".repeat(4000),
    };
    let back = JobReply::from_bytes(&m.to_bytes()).unwrap();
    let JobReply::Refused { message, .. } = back else {
        panic!("not a refusal")
    };
    assert!(message.len() <= MAX_TEXT);
}
