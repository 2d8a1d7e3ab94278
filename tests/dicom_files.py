"""Write small DICOM files with pydicom itself, for the reader and the embed tests."""

from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    SecondaryCaptureImageStorage,
    generate_uid,
)

PATIENT_NAME = "Zebedee^Quillfeather"  # distinctive: grep for it in every file a cache writes
PATIENT_ID = "PID-7781-QX"


def write_dicom(path: Path, pixels: np.ndarray, *, photometric: str = "MONOCHROME2",
                frames: int = 1, syntax=ExplicitVRLittleEndian, **tags) -> Path:
    """Save ``pixels`` (uint16/int16/uint8, (H, W) or (F, H, W); (H, W, 3) uint8 for "RGB") as a
    DICOM file with ``tags``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = PATIENT_NAME, PATIENT_ID, "19400229"
    ds.Modality = "CR"
    colour = photometric == "RGB"  # pixels (H, W, 3) uint8
    ds.Rows, ds.Columns = pixels.shape[:2] if colour else pixels.shape[-2:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = (3 if colour else 1), photometric
    if colour:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = pixels.dtype.itemsize * 8
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(np.issubdtype(pixels.dtype, np.signedinteger))
    if frames > 1:
        ds.NumberOfFrames = frames
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    if syntax != ExplicitVRLittleEndian:  # pretend-compressed bytes: only the syntax matters
        from pydicom.encaps import encapsulate
        ds.PixelData = encapsulate([b"\xff\xd8\xff\xd9" + bytes(16)])
        ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


__all__ = ["JPEGBaseline8Bit", "PATIENT_ID", "PATIENT_NAME", "write_dicom"]
