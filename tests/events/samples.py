"""Sample payloads that several source tests share."""

from __future__ import annotations

#: a MinIO bucket notification (the AWS ``Records[]`` shape) with an upload and a deletion
MINIO_NOTIFICATION = {
    "EventName": "s3:ObjectCreated:Put",
    "Key": "data/run%201/out+file.nc",
    "Records": [
        {
            "eventVersion": "2.0",
            "eventSource": "minio:s3",
            "eventTime": "2024-05-01T10:00:00.000Z",
            "eventName": "s3:ObjectCreated:Put",
            "s3": {
                "bucket": {"name": "data", "arn": "arn:aws:s3:::data"},
                "object": {
                    "key": "run%201/out+file.nc",
                    "size": 1024,
                    "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                    "contentType": "application/x-netcdf",
                    "userMetadata": {"content-type": "application/x-netcdf"},
                    "sequencer": "17CB3D3C1F8D7B2A",
                },
            },
        },
        {
            "eventName": "s3:ObjectRemoved:Delete",
            "s3": {
                "bucket": {"name": "data"},
                "object": {"key": "old.nc", "sequencer": "17CB3D3C1F8D7B2B"},
            },
        },
    ],
}
