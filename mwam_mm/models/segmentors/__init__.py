from .rgbt_encoder_decoder import RGBTEncoderDecoder

__all__ = ['RGBTEncoderDecoder']
