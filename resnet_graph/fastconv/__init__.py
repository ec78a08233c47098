"""fastconv"""
